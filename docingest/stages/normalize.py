"""Normalize values as printed into warehouse form: ISO dates, decimal amounts, ISO-4217 codes."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation

# Active ISO-4217 codes (2024 list, funds and precious metals left out).
ISO_4217 = frozenset(
    """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN
    BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP
    GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS
    KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR
    MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF
    SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD
    TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWL""".split()
)

# Symbols and local abbreviations that name one currency unambiguously enough to use.
CURRENCY_SYMBOLS = {"€": "EUR", "£": "GBP", "$": "USD", "US$": "USD", "RM": "MYR", "¥": "JPY",
                    "₹": "INR", "CHF": "CHF", "Fr.": "CHF", "zł": "PLN", "kr": "SEK"}

MONTHS = {
    # English, German, French: the languages of the documents we have seen.
    "jan": 1, "january": 1, "januar": 1, "janvier": 1, "jän": 1,
    "feb": 2, "february": 2, "februar": 2, "février": 2, "fevrier": 2,
    "mar": 3, "march": 3, "märz": 3, "maerz": 3, "mars": 3,
    "apr": 4, "april": 4, "avril": 4,
    "may": 5, "mai": 5,
    "jun": 6, "june": 6, "juni": 6, "juin": 6,
    "jul": 7, "july": 7, "juli": 7, "juillet": 7,
    "aug": 8, "august": 8, "août": 8, "aout": 8,
    "sep": 9, "sept": 9, "september": 9, "septembre": 9,
    "oct": 10, "october": 10, "oktober": 10, "okt": 10, "octobre": 10,
    "nov": 11, "november": 11, "novembre": 11,
    "dec": 12, "december": 12, "dezember": 12, "dez": 12, "décembre": 12, "decembre": 12,
}
_MONTH_ALT = "|".join(sorted((re.escape(m) for m in MONTHS), key=len, reverse=True))

DATE_PATTERNS = [
    # 2018-04-18, 2018/04/18, 2018.04.18
    ("ymd", re.compile(r"\b(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})\b")),
    # 18.04.2018 / 18-04-2018 / 04/18/2018 / 18/04/18
    # OCR glues the time to the date ("25/12/20188:13:39PM", "06/01/1812.17:26PM"): the year
    # may run into it. Four-digit years are 19xx/20xx, so "1812.17" reads as '18 + 12.17.
    ("num", re.compile(r"\b(\d{1,2})\s?([./-])\s?(\d{1,2})\s?\2\s?((?:19|20)\d{2}(?=\d{1,2}:\d{2})|"
                       r"\d{2}(?=\d{1,2}[:.]\d{2})|(?:19|20)\d{2}\b|\d{2}\b)")),
    # 18 April 2018, 18. April 2018, 18-Apr-2018, 18 Apr, 2018, 12Mar201818:19 (time glued on)
    # and the contract style "the 11th day of January, 2012".
    ("dmy_text", re.compile(rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\.?(?:\s+day\s+of)?[\s-]*({_MONTH_ALT})\.?,?[\s-]*"
                            rf"((?:19|20)\d{{2}}(?=\d{{1,2}}:\d{{2}})|\d{{4}}\b|\d{{2}}\b)", re.I)),
    # April 18, 2018 / Apr 18 2018 / April 18th, 2018
    ("mdy_text", re.compile(rf"\b({_MONTH_ALT})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b", re.I)),
]


def _year(text: str) -> int:
    year = int(text)
    if year < 100:
        year += 2000 if year < 70 else 1900
    return year


def _make(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def find_dates(text: str, dayfirst: bool = True) -> list[tuple[int, int, date]]:
    """Every date in ``text`` as (start, end, date). Ambiguous numeric dates use ``dayfirst``
    unless only one reading is a valid date; dotted dates are always day-first."""
    found: list[tuple[int, int, date]] = []
    taken: list[tuple[int, int]] = []
    for kind, pattern in DATE_PATTERNS:
        for m in pattern.finditer(text):
            if any(m.start() < e and s < m.end() for s, e in taken):
                continue
            parsed: date | None = None
            if kind == "ymd":
                parsed = _make(int(m[1]), int(m[2]), int(m[3]))
            elif kind == "num":
                a, sep, b, y = int(m[1]), m[2], int(m[3]), _year(m[4])
                first = dayfirst or sep == "."
                parsed = _make(y, b, a) if first else _make(y, a, b)
                if parsed is None:
                    parsed = _make(y, a, b) if first else _make(y, b, a)
            elif kind == "dmy_text":
                parsed = _make(_year(m[3]), MONTHS[m[2].lower()], int(m[1]))
            else:
                parsed = _make(int(m[3]), MONTHS[m[1].lower()], int(m[2]))
            if parsed is not None:
                found.append((m.start(), m.end(), parsed))
                taken.append((m.start(), m.end()))
    found.sort()
    return found


def parse_date(text: str, dayfirst: bool = True) -> date | None:
    dates = find_dates(text, dayfirst)
    return dates[0][2] if dates else None


AMOUNT_RE = re.compile(
    # OCR reads a "$" glued to an amount as "S" ("Total:S8.20"): only before a decimal amount.
    r"(?<![\w.,])(-?\(?)\s?(?:[$€£¥]|RM|EUR|USD|GBP|MYR|S(?=\d[\d,]*[.,]\d{2}(?!\d)))?\s?"
    # A grouped number never starts with 0 and never runs on into ".5" ("01.234.567.8" is a
    # policy number); a space groups thousands only before a decimal comma ("1 234,56"), so
    # in "Qty 18 144.68" it parts two numbers.
    r"((?!0\d)\d{1,3}(?:[,.']\d{3})+(?:[.,]\d{1,2})?|(?!0\d)\d{1,3}(?: \d{3})+(?:,\d{1,2})?(?![.\d])|"
    # Never the mantissa of an exponent ("1E309" is not 1.00).
    r"\d+(?:[.,]\d{1,2})?)(\)?-?)(?!\d|[.,]\d|[eE][+-]?\d)"
)

# No document prints an amount of a trillion or more: such a number is an id read as an
# amount, or a doctored value, and the warehouse's DECIMAL(20,6) columns end below 10^14.
MAX_AMOUNT = Decimal(10) ** 12


def parse_amount(text: str) -> Decimal | None:
    """'1.234,56' / '1,234.56' / 'RM 12.00' / '(5.00)' -> Decimal. None when not an amount."""
    m = AMOUNT_RE.search(text.replace("\u00a0", " "))
    if not m:
        return None
    return _to_decimal(m[2], negative=bool(m[1].strip()) or m[3].endswith("-"))


def _to_decimal(number: str, negative: bool = False) -> Decimal | None:
    number = number.replace(" ", "").replace("'", "")
    last_dot, last_comma = number.rfind("."), number.rfind(",")
    decimal_sep = None
    if last_dot >= 0 and last_comma >= 0:
        decimal_sep = "." if last_dot > last_comma else ","
    elif last_comma >= 0:
        # "12,50" is a decimal comma; "1,250" is a thousands separator.
        # Unit prices carry four decimals ("9,9000"): only three digits make a thousands group.
        decimal_sep = "," if len(number) - last_comma - 1 in (1, 2, 4) else None
    elif last_dot >= 0:
        decimal_sep = "." if len(number) - last_dot - 1 != 3 or number.count(".") == 1 else None
    if decimal_sep:
        whole, frac = number[: number.rfind(decimal_sep)], number[number.rfind(decimal_sep) + 1:]
        number = re.sub(r"[.,]", "", whole) + "." + frac
    else:
        number = re.sub(r"[.,]", "", number)
    try:
        value = Decimal(number)
    except InvalidOperation:
        return None
    if not value.is_finite() or abs(value) >= MAX_AMOUNT:
        return None
    return -value if negative else value


def format_amount(value: Decimal) -> str:
    """Plain decimal string with at least 2 decimals: 262.9 -> '262.90'."""
    quantized = value.quantize(Decimal("0.01")) if value.as_tuple().exponent >= -2 else value
    return f"{quantized:f}"


# Two amounts the text layer printed without a space between them ("Steuerbetrag 163,16183,14":
# the tax in two currencies). No single number has two decimal commas, so where each part has
# exactly two decimals the split is the only reading. Grouping must agree with the separator.
_GLUED_AMOUNTS = [
    re.compile(rf"(?<![\w.,])({part})({part})(?![\w.,])")
    for part in (r"(?:(?!0\d)(?:\d{1,3}(?:\.\d{3})+|\d+)|0),\d{2}", r"(?:(?!0\d)(?:\d{1,3}(?:,\d{3})+|\d+)|0)\.\d{2}")
]


def find_amounts(text: str) -> list[tuple[int, int, Decimal]]:
    text = text.replace("\u00a0", " ")
    out = []
    for m in AMOUNT_RE.finditer(text):
        value = _to_decimal(m[2], negative=bool(m[1].strip()) or m[3].endswith("-"))
        if value is not None:
            out.append((m.start(2), m.end(2), value))
    for glued in _GLUED_AMOUNTS:
        for m in glued.finditer(text):
            if not any(s < m.end() and m.start() < e for s, e, _ in out):
                out += [(m.start(g), m.end(g), _to_decimal(m[g])) for g in (1, 2)]
    return sorted(out)


_NUMBER_TOKEN = re.compile(r"-?\d{1,3}(?:[,.']\d{3})+(?:[.,]\d{1,4})?|-?\d+(?:[.,]\d{1,4})?")


def parse_number(token: str) -> Decimal | None:
    """A whole token that is a number, with up to four decimals ("9,9000", "1.234,56", "20")."""
    if not _NUMBER_TOKEN.fullmatch(token):
        return None
    return _to_decimal(token.lstrip("-"), negative=token.startswith("-"))


def normalize_currency(text: str) -> str | None:
    token = text.strip()
    if token.upper() in ISO_4217:
        return token.upper()
    return CURRENCY_SYMBOLS.get(token)


def fold_text(text: str) -> str:
    """Case- and whitespace-insensitive form used to compare names and addresses."""
    return re.sub(r"[\W_]+", " ", text.casefold()).strip()


# OCR's usual misreadings inside company names: a zero between letters ("AEON C0."), the
# Malaysian "SDN BHD" / "S/B" suffixes ("SIN BHD", "San Bhd", "S/D"), "(H)" for "(M)", and the
# Malay "Dimiliki:" ("owned by") printed before the owner's name.
_COMPANY_FIXES = [
    (re.compile(r"(?<=[A-Za-z])0(?=[A-Za-z.)]|\s|$)"), "O"),
    (re.compile(r"\bS[AIO]N(\s*)BHD\b"), r"SDN\1BHD"),
    (re.compile(r"\bS[aio]n(\s*)Bhd\b"), r"Sdn\1Bhd"),
    (re.compile(r"\bS/D\s*$|(?<=\s)5/B\b"), "S/B"),
    (re.compile(r"\((?:H|N)\)(?=\s*(?:SDN|BHD|Sdn|Bhd))"), "(M)"),
    (re.compile(r"(?i)^dimiliki\s*:?\s*"), ""),
    # A capital I inside a lower-case word is an l ("WorId").
    (re.compile(r"(?<=[a-z])I(?=[a-z]|\b)"), "l"),
]


def clean_company_name(text: str | None) -> str | None:
    """A company name as printed, with OCR's typical confusions undone (the raw text keeps
    what was read)."""
    if not text:
        return text
    for pattern, repl in _COMPANY_FIXES:
        text = pattern.sub(repl, text)
    return text.strip() or None


# An address as OCR reads it: a registration number in brackets before it ("(JM0352019-K)
# NO.53 JALAN ..."), O for 0 inside numbers ("8110O"), 0 for O inside words ("L0T"), 1 and 0
# for L and O in the leading "LOT" ("10T 1851-A", "1.OT 1851-A").
_ADDRESS_FIXES = [
    (re.compile(r"^\s*\((?=[^)]*\d{3})[^)]{4,24}\)\s*"), ""),
    (re.compile(r"^\s*[1lI][.,]?[0O]T(?=\s*\d)"), "LOT"),
    # Registration numbers and receipt timestamps printed before the street, with or without
    # a label: "JM0325955-V", "BRNo.:(124525-H)", "Co.No.113825-W", "22Mar201818:24".
    (re.compile(r"^(?:\s*(?:\(?\s*(?:c[o0]\.?\s*n[o0]\.?|company\s*[nr][o0]\.?|br\s*n[o0]\.?|reg\.?\s*n[o0]\.?)"
                r"\s*[:.]?\s*)?\(?\s*[A-Z]{0,3}\d{5,}\s*-\s*[A-Z]\b\s*\)?|\s*\d{1,2}[A-Za-z]{3}\d{4}\d{1,2}:\d{2})+\s*",
                re.I), ""),
    (re.compile(r"(?<=\d)[Oo](?=\d|\b)|(?<=\d{3})O"), "0"),
    (re.compile(r"(?<=[A-Z])0(?=[A-Z])|\b0(?=[A-Z]{2})|(?<=\b[A-Z])0(?=\b)"), "O"),
    (re.compile(r"(?<=[a-z])1(?=[a-z])|(?<=[a-z]{3})1\b"), "l"),
    # An l or I between digits is a 1 ("Jalan 7/1l8B").
    (re.compile(r"(?<=\d)[lI](?=\d)"), "1"),
]

# The words street addresses are made of (Malay and English) and the Malaysian states, whose
# letterheads OCR reads worst: a reading one typical confusion away from exactly one of them
# ("8ESAR", "EANDAR", "SCLANGOR", "Jaian") is that word. Place names are not listed: a street
# or a town may be called anything, and a name must never be "corrected" into another.
_ADDRESS_WORDS = frozenset("""
    JALAN TAMAN BANDAR BARU BESAR LORONG PERSIARAN LEBUHRAYA KAWASAN PERINDUSTRIAN SEKSYEN
    KAMPUNG BUKIT SUNGAI PUSAT PLAZA MENARA WISMA KOMPLEKS DESA INDAH UTAMA UTARA SELATAN
    TIMUR BARAT TENGAH JAYA BAHRU ALAM FLOOR LEVEL GROUND BLOCK STREET ROAD AVENUE
    JOHOR KEDAH KELANTAN MELAKA NEGERI SEMBILAN PAHANG PERAK PERLIS PINANG PENANG SABAH
    SARAWAK SELANGOR TERENGGANU KUALA LUMPUR PUTRAJAYA LABUAN DARUL EHSAN TAKZIM RIDZUAN
    MALAYSIA
""".split())
# What OCR reads -> what may have been printed: shapes the recognizer confuses.
_CONFUSED = {
    "8": "B", "B": "8E", "E": "BCF", "C": "EG", "F": "E", "G": "C6", "6": "G", "I": "L1T",
    "L": "I1", "1": "IL", "T": "I", "0": "OD", "O": "0DQ", "D": "O0", "Q": "O", "5": "S",
    "S": "5", "U": "VD", "V": "U", "H": "NM", "N": "HM", "M": "NH", "K": "X", "X": "K",
}
_ADDRESS_TOKEN = re.compile(r"[A-Za-z0-9]{4,}")


def _repair_address_word(match: re.Match[str]) -> str:
    token = match.group(0)
    upper = token.upper()
    if upper in _ADDRESS_WORDS or sum(c.isalpha() for c in token) < 3 or token.isdigit():
        return token
    fits = [word for word in _ADDRESS_WORDS if len(word) == len(upper) and _one_confusion(upper, word)]
    if len(fits) != 1:
        return token
    lower = token.isalpha() and not token.isupper()
    return "".join(true.lower() if lower and (read.islower() or (not read.isalpha() and i > 0)) else true
                   for i, (read, true) in enumerate(zip(token, fits[0])))


def _one_confusion(read: str, word: str) -> bool:
    diffs = [(r, w) for r, w in zip(read, word) if r != w]
    return len(diffs) == 1 and diffs[0][1] in _CONFUSED.get(diffs[0][0], "")


# Where a street address begins: "No. 5", "Lot 1851", "Level 6", "Unit G-13", "12, Jalan ...".
_STREET_START = re.compile(
    r"(?i)\b(?:no\.?\s*:?\s*\d|lot['.:]?\s*[a-z]?\s*\d|lot\s+p\.?\s*t|level\s*\d|unit\s*[a-z]?-?\d|"
    r"\d+[a-z]?(?:-\d+[a-z]?)*\s*[,.]?\s*(?:jalan|jln|jl\.|ss\s?\d|lorong|persiaran))")
_STREET_WORD = re.compile(
    r"(?i)str\.|stra(?:ß|ss)e|street|road|\bweg\b|allee|platz|gasse|avenue|\brue\b|chemin|jalan|jln|taman|lorong")
# What follows an address on a letterhead: registration / tax ids, phone, the title.
_AFTER_ADDRESS = re.compile(
    r"(?i)\s*\(?\s*\b(?:roc\b|gst|co\.?\s*reg|document|tax\s*in\w*|tel(?:efon)?\b|phone|fax\b|e-?mail|www).*$|\s*\b\d{9,}\b.*$")


def clean_address(text: str | None) -> str | None:
    if not text:
        return text
    for pattern, repl in _ADDRESS_FIXES:
        text = pattern.sub(repl, text)
    text = _ADDRESS_TOKEN.sub(_repair_address_word, text)
    # A shop name or a stamp printed before the street ("IKEA Cheras No 2A Jalan ..."); a
    # prefix with commas is part of the address ("S117, Second Floor, Aeon City, 1, Jalan").
    start = _STREET_START.search(text)
    prefix = text[: start.start()] if start else ""
    if prefix and "," not in prefix and not _STREET_WORD.search(prefix):
        text = text[start.start():]
    text = _AFTER_ADDRESS.sub("", text)
    return text.strip(" ,;") or None
