// Review page behaviour: place field boxes on the page images, link boxes and inputs,
// keyboard shortcuts. Served from /static (the CSP allows no inline script).
"use strict";

function placeBoxes() {
  for (const box of document.querySelectorAll(".box")) {
    const x0 = +box.dataset.x0, y0 = +box.dataset.y0, x1 = +box.dataset.x1, y1 = +box.dataset.y1;
    box.style.left = x0 + "%";
    box.style.top = y0 + "%";
    box.style.width = Math.max(0.5, x1 - x0) + "%";
    box.style.height = Math.max(0.5, y1 - y0) + "%";
  }
}

function highlight(row, scroll) {
  for (const el of document.querySelectorAll(".box.active, .row.active")) el.classList.remove("active");
  if (row === null) return;
  for (const el of document.querySelectorAll('[data-row="' + row + '"]')) {
    if (el.classList.contains("box") || el.classList.contains("row")) el.classList.add("active");
  }
  const box = document.querySelector('.box[data-row="' + row + '"]');
  if (box && scroll) box.scrollIntoView({block: "center", behavior: "smooth"});
}

function typing(target) {
  return target && (target.tagName === "INPUT" || target.tagName === "SELECT" || target.tagName === "TEXTAREA");
}

document.addEventListener("DOMContentLoaded", () => {
  placeBoxes();
  for (const input of document.querySelectorAll("input[data-row]")) {
    input.addEventListener("focus", () => highlight(input.dataset.row, true));
  }
  for (const box of document.querySelectorAll(".box")) {
    box.addEventListener("click", () => {
      const input = document.querySelector('input[data-row="' + box.dataset.row + '"]');
      if (input) input.focus();
    });
  }
  document.addEventListener("keydown", (event) => {
    const form = document.getElementById("review-form");
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && form) {
      event.preventDefault();
      document.getElementById("approve").click();
      return;
    }
    if (typing(event.target) || event.ctrlKey || event.metaKey || event.altKey) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    if (event.key === "a" && form) { event.preventDefault(); document.getElementById("approve").click(); }
    else if (event.key === "r" && form) { event.preventDefault(); document.getElementById("reject").click(); }
    else if (event.key === "n") {
      const next = document.getElementById("next-link") || document.querySelector("a.doc-link");
      if (next) { event.preventDefault(); window.location.href = next.href; }
    }
  });
});
