"""Parties: the issuer (seller block, labelled seller, return-address line, letterhead) with
its address, and the buyer (buyer block, window-envelope recipient)."""

from __future__ import annotations

import re

from docingest.stages.labels import (
    FALLBACK,
    LABEL_RE,
    LABELS,
    NEXT_LINE,
    SAME_LINE,
    Candidate,
    after_label,
    name_finder,
)
from docingest.stages.layout import Line, column_of
from docingest.stages.normalize import clean_address, find_amounts

_NOISE_LINE = re.compile(
    r"^(tax\s*invoice|invoice|receipt|rechnung|facture|official\s*receipt|cash\s*(sale|bill)|"
    r"welcome|copy|original|page\s*\d|seite\s*\d|bill|simplified|guest\s*check)\b", re.I
)
_ADDRESS_STOP = re.compile(
    r"\b(tel|phone|fax|gst|vat|reg|e-?mail|www\.|http|invoice|receipt|date|no\.?\s*:|ust|"
    r"number|bill\s*to|kunde|document|terminal|cashier)\b|rechnung|facture|nummer|"
    # OCR glues labels to numbers: "TEL07-3523888", "GSTID:000849813504"; bare phone numbers
    # ("03-41318972", "+603-91302672", "07-355 2616", "+603-9130 2672", "T: 03-2093 7358").
    r"\btel(?=[\s.:\d])|\btelephone|\bh/p\b|\b[cg]st\s*(?:id|no)|\b0\d{1,2}-\s?\d{3,4}\s?\d{4}\b|"
    r"\+\d{2,3}[\s-]?\d{1,2}[\s-]?\d{3,4}\s?\d{4}\b|\b[TF]\s?:\s?\+?\d|"
    # A date, not a run of house numbers ("NO 43-45-47G").
    r"(?<![\w-])\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}(?![\w-])|"
    # An e-mail address or a toll-free line ("careline: 1800 88 1231", "1-300-80-8989").
    r"\S@\w[\w-]*\.\w|\b1[-\s]?[38]00[-\s]?\d{2}[-\s]?\d{4}\b", re.I
)
# A document title printed on the same row as the issuer's name ("ACME LTD      INVOICE").
_TITLE_TAIL = re.compile(r"\s+(tax\s+invoice|invoice|rechnung|facture|receipt)\b.*$", re.I)
NAME_STOP = re.compile(r"\b(tel|phone|fax|e-?mail|www\.|http|date|datum)\b|\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}|"
                        r"\.com\b|thank|shopping", re.I)
# Contact and tax lines end a letterhead: a company named below them is not the issuer.
_LETTERHEAD_END = re.compile(r"(?i)\b(tel|phone|fax|h/?p)\b|\btel(?=[\s.:\d])|gst\s*(?:no|id|reg)")


# "Seller: ACME" opening a line, or "Seller" alone above its value; in "from the date of
# purchase" (small print) no colon makes "from" a label.
_VENDOR_LABEL_ALONE = re.compile(rf"^\s*(?:{LABELS['vendor_name']})\s*(:)?\s*$", re.I)
# Long suffixes may be glued to the name by OCR ("YONGFATTENTERPRISE"); short ones need a
# word boundary ("AG" is in "PAGE").
_COMPANY_SUFFIX = re.compile(
    r"(sdn\.?\s*bhd|enterprise|trading|hardware|restaurant|restoran|limited|gmbh)\b|"
    r"\b(bhd|[s5]/b|pte\.?\s*ltd|ltd|llc|l\.l\.c|inc|corp(oration)?|ag|kg|se|plc|llp|sarl|"
    r"s\.a\.r\.l|sas|s\.a\.|b\.v|n\.v)\b\.?|"
    # OCR glues the registration number to "S/B" and reads S as 5: "MART 5/B0519537-X)".
    r"\b[s5]/b(?=[\d(])", re.I)
# "(CO. REG: 933109-X)", "Co-REG:860671-D", "CompanyReg.No.:001055194x", "Conpany No:20965-W" (OCR).
_REGISTRATION = re.compile(
    r"^\s*\(?\s*(c[o0][.-]?\s*reg|c[o0][mn]pany\s*(reg\.?\s*)?n[o0]|reg\.?\s*n[o0]|\d{3,}-[A-Z])", re.I)

# The issuer's ids printed between its name and its address ("GST Reg no : 0000 6771 0976",
# "Company no : 1174703-K", "BR No.: 0195932-X").
_TAX_ID_LINE = re.compile(r"(?i)^\W*((gst|sst|tax)\s*(reg(istration)?\.?\s*)?(n[o0]|id)|"
                          r"c[o0]mpany\s*n[o0]|br\s*n[o0])\b.{0,30}\d{4}")


def _role_header(roles: str) -> re.Pattern[str]:
    """A line that is only a party's role, maybe with a translation: "Verkäufer / Seller:"."""
    return re.compile(rf"^({roles})(\s*/\s*[\w-]+)?\s*:?$", re.I)


_SELLER_BLOCK = _role_header(r"ver\s?k[äa]ufer|seller|supplier|lieferant|vendor|vendeur|fournisseur|"
                             r"rechnungs?e?rsteller|leistungserbringer")
BUYER_BLOCK = _role_header(r"k[äa]ufer|buyer|bill\s*to|sold\s*to|invoice\s*to|rechnungsempf[äa]nger|kunde|"
                           r"customer|acheteur|client|leistungsempf[äa]nger")
_BLOCK_SKIP = re.compile(r"^(name\s*:?$|(globale\s*)?nummer\b|number\b|kunden-?nr|customer\s*(no|id)|id\s*:|gln\b)", re.I)
_ADDRESS_START = re.compile(
    r"^anschrift\s*:|^address\s*:|^adresse\s*:|"
    r"\b[\w.-]*(str\.|straße|strasse|street|road|weg|allee|platz|gasse|avenue|ave\.|rue|chemin)\s*\d|"
    r"^\d+[a-z]?\s+\w+.*\b(street|st|road|rd|avenue|ave|blvd|lane|ln|drive|dr|way)\b\.?|"
    r"^([A-Z]{2}[\s-]?)?\d{4,5}\s+\w+|^(postfach|p\.?o\.?\s*box)\b", re.I)
# A column of form labels under a role word ("Buyer / Salesperson / Product / Brand") is a label
# column whose values are printed elsewhere, not a party: a label is never a name.
FORM_LABEL = re.compile(
    r"^(salesperson|product|brand|agency|advertiser|estimate(/hl)?|comments?|contract|terms|period|"
    r"acct\s*types?|bill\s*type|co-?op|special\s*handling|demo|revision|[\w/ -]{1,25}:)\s*:?$", re.I)
_BLOCK_END = re.compile(r"\b(ust|vat|tel|telefon|fon|mobil|phone|fax|e-?mail|www\.|iban|bic|tax\s*id)\b|steuer", re.I)


def party_block(lines: list[Line], header: re.Pattern[str]) -> tuple[Candidate, Candidate | None] | None:
    """A party printed as a block under its role ("Verkäufer", "Bill to:"): the name is the
    lines up to the first address line, the address the lines after it up to a tax id, phone
    or the next block."""
    for i, line in enumerate(lines[:200]):
        if not header.match(line.text.strip()):
            continue
        body = []
        left = line.words[0].bbox[0] if line.words else 0.0
        next_column = None
        for nxt in lines[i + 1: i + 12]:
            if nxt.page != line.page:
                break
            # The block is a column: what a row prints to its right (the invoice's number and
            # date beside the address) belongs to another block.
            nxt, next_column = column_of(nxt, left, next_column)
            text = nxt.text.strip()
            if _SELLER_BLOCK.match(text) or BUYER_BLOCK.match(text):
                break
            if not text or _BLOCK_SKIP.match(text):
                continue
            body.append(nxt)
        name_lines: list[Line] = []
        address_lines: list[Line] = []
        for nxt in body:
            if _BLOCK_END.search(nxt.text):
                break
            if address_lines or (name_lines and _ADDRESS_START.search(nxt.text)):
                address_lines.append(nxt)
                if len(address_lines) == 4:
                    break
            elif re.match(r"^\s*\w[\w\s.-]{1,30}:\s*\S", nxt.text) and not re.match(r"(?i)^\s*name\s*:", nxt.text):
                # "Ansprechpartner: Max Mustermann" follows the name and is not part of it; the
                # address may still follow ("Anschrift: ...").
                continue
            elif name_lines and _COMPANY_SUFFIX.search(name_lines[-1].text):
                continue  # "Taxi-Gast AG" / "Hans Mustermann": a contact person under the company
            elif len(name_lines) < 3:
                name_lines.append(nxt)
            else:
                break
        if not name_lines or FORM_LABEL.match(name_lines[0].text.strip()):
            continue
        name_text = " ".join(re.sub(r"^name\s*:\s*", "", l.text, flags=re.I) for l in name_lines).strip()
        name = Candidate(name_text, name_text, name_lines[0], 0, len(name_lines[0].text), SAME_LINE,
                         context=" ".join(l.text for l in name_lines), method="party_block")
        address = None
        if address_lines:
            joined = " ".join(re.sub(r"^(anschrift|address|adresse)\s*:\s*", "", l.text, flags=re.I)
                              for l in address_lines).strip()
            address = Candidate(joined, joined, address_lines[0], 0, len(address_lines[0].text),
                                NEXT_LINE, context=" ".join(l.text for l in address_lines), method="party_block")
        return name, address
    return None


_COUNTRY_END = re.compile(
    r"(?i)\b(malaysia|singapore|indonesia|thailand|deutschland|germany|france|österreich|austria|"
    r"schweiz|switzerland|united\s+kingdom|united\s+states|usa)\s*\.?\s*$")


# A registration number printed after the name: "99 SPEED MART S/B (519537-X)".
_REG_TAIL = re.compile(r"[\s(]*\(?\s*\d{4,}\s*[-·.]?\s*[A-Z]\s*\)?\s*$")


_SENDER_LINE = re.compile(r"^(.{3,60}?)(?:\s*[●•·|]\s*|\s+[-–]\s+)\S")


def _sender_line(page_lines: list[Line]) -> Candidate | None:
    """The return-address line of a letter: "Bei Spiel GmbH ● Ecke 12 ● 12345 Stadthausen"."""
    for line in page_lines:
        m = _SENDER_LINE.match(line.text)
        if m and _COMPANY_SUFFIX.search(m.group(1)):
            return Candidate(m.group(1).strip(), m.group(1).strip(), line, 0, m.end(1), NEXT_LINE,
                             method="sender_line")
    return None


def recipient(lines: list[Line]) -> Candidate | None:
    """A letter's window envelope: the recipient's name is the line under the return-address
    line ("Bei Spiel GmbH ● Ecke 12 ● 12345 Stadthausen" / "Theodor Est")."""
    first_page = [l for l in lines if l.page == lines[0].page] if lines else []
    sender = _sender_line(first_page)
    if sender is None:
        return None
    if sender.line.index + 1 >= len(first_page):
        return None
    after = first_page[sender.line.index + 1]  # the first page's lines start the document
    # The seller's own name again is its letterhead, not a recipient.
    if _name_like(after.text) and sender.raw not in after.text:
        text = after.text.strip()
        return Candidate(text, text, after, 0, len(after.text), NEXT_LINE, method="recipient")
    return None


def _sender_address(sender: Candidate) -> Candidate | None:
    """The rest of the return-address line: "● Ecke 12 ● 12345 Stadthausen"."""
    parts = [p.strip() for p in re.split(r"\s*[●•·|]\s*|\s+[-–]\s+", sender.line.text[sender.end:]) if p.strip()]
    # A country may follow the town ("● 12345 Stadthausen ● Germany").
    if not parts or not _ADDRESS_START.search(" ".join(parts)) and not any(
            re.search(r"\d{4,5}\s+\w", p) for p in parts[-2:]):
        return None
    start = sender.line.text.index(parts[0], sender.end)
    printed = sender.line.text[start:].strip()
    return Candidate(printed, clean_address(", ".join(parts)), sender.line, start, len(sender.line.text), NEXT_LINE,
                     context=sender.line.text, method="sender_line")


def _name_like(text: str) -> bool:
    text = text.strip()
    return (len(text) >= 3 and not re.search(r"\d", text) and not text.islower()
            and not _NOISE_LINE.match(text) and not NAME_STOP.search(text))


def find_vendor(lines: list[Line]) -> tuple[Candidate, Candidate | None] | None:
    """The issuer: a seller block, a labelled seller name, else a company line at the top."""
    block = party_block(lines, _SELLER_BLOCK)
    if block is not None:
        return block
    # Only a label that opens its line ("Seller: ACME"): "download from GooglePlay" is no vendor.
    labelled = [c for c in after_label(lines, LABEL_RE["vendor_name"], name_finder)
                if (m := _VENDOR_LABEL_ALONE.match(c.line.text[: c.start] if c.how == SAME_LINE
                                                   else lines[c.line.index - 1].text))
                and (m.group(1) or c.how != SAME_LINE)]
    if labelled:
        c = labelled[0]
        c.how, c.method = min(c.how, 0.7), "label"
        return c, None
    first_page = [l for l in lines if l.page == lines[0].page] if lines else []
    head = first_page[:10]
    letterhead_end = next((i for i, l in enumerate(head) if i > 0 and _LETTERHEAD_END.search(l.text)), len(head))
    # A line that names a company ("... SDN BHD", "... GmbH", "... Ltd") is the issuer more
    # often than whatever happens to be printed (or handwritten) above it.
    suffixed = [i for i, l in enumerate(head[:letterhead_end]) if _COMPANY_SUFFIX.search(l.text)
                and not NAME_STOP.search(l.text) and not LABEL_RE["customer_name"].search(l.text)
                and not _REGISTRATION.search(l.text) and not re.search(r"(?i)reg\.?\s*n[o0]", l.text)]
    sender = _sender_line(first_page)
    if sender is not None and (not suffixed or head[suffixed[0]] is sender.line):
        return sender, _sender_address(sender)
    order = suffixed[:1] + [i for i in range(min(8, len(head))) if i not in suffixed[:1]]
    for i in order:
        line = head[i]
        text = _TITLE_TAIL.sub("", line.text).strip()
        if len(text) < 3 or _NOISE_LINE.match(text) or not re.search(r"[A-Za-z]{3}", text):
            continue
        if text.islower():
            continue  # a handwritten note or a stamp, not a printed letterhead
        if NAME_STOP.search(text) or find_amounts(text) and not re.search(r"[A-Za-z]{4}", text):
            continue
        how = NEXT_LINE if i in suffixed[:1] else FALLBACK + 0.15
        context = None
        text = _REG_TAIL.sub("", text).strip() or text
        suffix = _COMPANY_SUFFIX.search(text)
        # "CO. (M)" before "SDN BHD" is part of the suffix, not of the name.
        name_words = [w for w in text[: suffix.start()].split()
                      if not re.fullmatch(r"(?i)co\.?|\(\w\)|&", w)] if suffix else []
        if (i in suffixed[:1] and i > 0 and suffix is not None
                and sum(len(re.sub(r"\W", "", w)) for w in name_words) < 8 and _name_like(head[i - 1].text)):
            # "PASARAYA BORONG PINTAR" / "SDN BHD": the name started on the line above. Eight
            # letters before the suffix are a whole name ("TasteOfTheWorldSdnBhd" under a brand).
            text = f"{head[i - 1].text.strip()} {text}"
            context = text
            line = head[i - 1]
        if re.search(r"(&|\band)$", text, re.I) and i + 1 < len(head):
            # "HOME MASTER HARDWARE &" / "ELECTRICAL": the name goes on.
            text = f"{text} {head[i + 1].text.strip()}"
            context = text
            i += 1
        elif (i + 2 < len(head) and _name_like(head[i + 1].text)
              and head[i + 1].text.isupper() and _REGISTRATION.match(head[i + 2].text)):
            # "RESTAURANT JIAWEI" / "JIAWEI HOUSE" / "002693074-K": the registration number
            # closes the name, so the line above it is still the name.
            text = f"{text} {head[i + 1].text.strip()}"
            context = text
            i += 1
        method = "letterhead_company" if i in suffixed[:1] else "letterhead_top"
        name = Candidate(text, text, line, 0, len(line.text), how, context=context, method=method)
        address_lines = []
        window_end = i + 7  # an address runs over at most six lines under the name
        for nxt in first_page[i + 1: window_end]:
            if not address_lines and (_REGISTRATION.match(nxt.text) or _TAX_ID_LINE.match(nxt.text)
                                      or clean_address(nxt.text) is None):
                continue  # "(CO. REG: 933109-X)", "GST No : ..." under the name belong to it
            if _ADDRESS_STOP.search(nxt.text) or _NOISE_LINE.match(nxt.text):
                break
            address_lines.append(nxt)
            if _COUNTRY_END.search(nxt.text):
                break  # an address ends with its country; a branch name may follow it
        else:
            # The window ran out inside the address (a former name and a licence line under
            # the name): a last line of a word or two ("Selangor") right before a contact or
            # tax line still closes it.
            after = first_page[window_end: window_end + 2]
            if (address_lines and len(after) == 2 and _ADDRESS_STOP.search(after[1].text)
                    and re.fullmatch(r"[^\W\d_]+(?:[ .]+[^\W\d_]+)?\.?", after[0].text.strip())):
                address_lines.append(after[0])
        address = None
        if address_lines:
            joined = " ".join(l.text for l in address_lines)
            address = Candidate(joined, clean_address(joined), address_lines[0], 0,
                                len(address_lines[0].text), FALLBACK, context=joined, method=method)
        return name, address
    return None
