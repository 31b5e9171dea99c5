// Sorting and filtering for the ivl3 report.  ITEMS[i] holds the scores of the element with data-idx=i.
(function () {
  const list = document.getElementById("items");
  const data = JSON.parse(document.getElementById("ivl3-data").textContent);
  function value(idx, key) {
    const it = data.items[idx];
    if (key === "delta") return it.delta === null ? Infinity : it.delta;
    const v = it.scores[key];
    return v === undefined ? Infinity : v;
  }
  function sortBy(key, dir) {
    const els = Array.from(list.children);
    els.sort((a, b) => dir * (value(+a.dataset.idx, key) - value(+b.dataset.idx, key)) || (+a.dataset.idx - +b.dataset.idx));
    els.forEach((el) => list.appendChild(el));
    document.body.dataset.sortKey = key;
    document.body.dataset.sortDir = dir > 0 ? "asc" : "desc";
    document.querySelectorAll("button[data-sort]").forEach((b) => {
      b.classList.toggle("active", b.dataset.sort === key);
      if (b.dataset.sort === key) b.querySelector(".dir").textContent = dir > 0 ? "\u2191 worst first" : "\u2193 best first";
      else b.querySelector(".dir").textContent = "";
    });
  }
  document.querySelectorAll("button[data-sort]").forEach((b) => {
    b.addEventListener("click", () => {
      const key = b.dataset.sort;
      const same = document.body.dataset.sortKey === key;
      sortBy(key, same && document.body.dataset.sortDir === "asc" ? -1 : 1);
    });
  });
  const filter = document.getElementById("filter");
  filter.addEventListener("input", () => {
    const q = filter.value.toLowerCase();
    Array.from(list.children).forEach((el) => el.classList.toggle("hidden", q && !el.textContent.toLowerCase().includes(q)));
  });
  window.ivl3SortBy = sortBy;
  sortBy(data.primary, 1);
})();
