/* The example browser of a synthgen report: filters and a text search over the sample embedded in
   the page. Every text of the data is put in the page as text (textContent), never as markup, so an
   example that holds HTML or a URL is shown as it is and loads nothing. */
(function () {
  "use strict";
  var PAGE = 50;
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var root = document.getElementById("example-browser");
  if (!root) { return; }
  var rows = data.rows;
  var TEXTS = ["id", "task", "query", "positive", "raw", "detail", "evidence"];
  rows.forEach(function (row) {
    var parts = TEXTS.map(function (k) { return row[k] || ""; }).concat(row.negatives || []);
    Object.keys(row.placeholders || {}).forEach(function (k) { parts.push(row.placeholders[k]); });
    row.haystack = parts.join("\n").toLowerCase();
    row.outcome = row.type === "example" ? "kept" : (row.type === "reject" ? "rejected: " : "dropped: ") + row.reason;
  });

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function distinct(key) {
    var seen = {};
    rows.forEach(function (row) { if (row[key] !== undefined && row[key] !== null) { seen[row[key]] = (seen[row[key]] || 0) + 1; } });
    return Object.keys(seen).sort(function (a, b) { return seen[b] - seen[a] || (a < b ? -1 : 1); });
  }

  var controls = el("div", "controls");
  var filters = {};
  function select(key, label, values, names) {
    var box = el("label", null, label);
    var sel = el("select");
    sel.id = "filter-" + key;
    sel.appendChild(new Option("all", ""));
    values.forEach(function (v, i) { sel.appendChild(new Option(names ? names[i] : v, v)); });
    sel.addEventListener("change", function () { shown = PAGE; draw(); });
    box.appendChild(sel);
    controls.appendChild(box);
    filters[key] = sel;
  }
  if (data.datasets.length > 1) {
    select("ds", "dataset", data.datasets.map(function (_, i) { return String(i); }), data.datasets);
  }
  select("outcome", "kept, rejected or dropped", distinct("outcome"));
  select("kind", "kind", distinct("kind"));
  select("language", "language", distinct("language"));
  select("source", "source", distinct("source"));
  select("task", "task", distinct("task"));
  var searchBox = el("label", null, "search the texts");
  var search = el("input");
  search.type = "search";
  search.id = "search";
  search.placeholder = "words in a query, a document, a task...";
  search.addEventListener("input", function () { shown = PAGE; draw(); });
  searchBox.appendChild(search);
  controls.appendChild(searchBox);
  root.appendChild(controls);
  var count = el("p", "count");
  count.id = "count";
  root.appendChild(count);
  var list = el("div");
  list.id = "rows";
  root.appendChild(list);
  var more = el("button", "more", "show more");
  more.addEventListener("click", function () { shown += PAGE; draw(); });
  root.appendChild(more);
  var shown = PAGE;

  function field(parent, name, value) {
    if (value === undefined || value === null || value === "") { return; }
    var line = el("div", "field");
    line.appendChild(el("b", null, name));
    line.appendChild(el("span", "text", value));
    parent.appendChild(line);
  }

  function card(row) {
    var node = el("article", "row " + row.type);
    node.dataset.kind = row.kind;
    node.dataset.type = row.type;
    var head = el("div", "head");
    [row.kind, row.language, row.source, data.datasets.length > 1 ? data.datasets[row.ds] : null, row.id].forEach(function (v) {
      if (v) { head.appendChild(el("span", "badge", v)); }
    });
    if (row.type !== "example") { head.appendChild(el("span", "badge reason", row.outcome)); }
    node.appendChild(head);
    field(node, "task", row.task);
    field(node, "query", row.query);
    field(node, "positive", row.positive);
    (row.negatives || []).forEach(function (n, i) { field(node, row.negatives.length > 1 ? "negative " + (i + 1) : "negative", n); });
    field(node, "detail", row.detail);
    if (row.placeholders && Object.keys(row.placeholders).length) {
      node.appendChild(el("div", "placeholders", Object.keys(row.placeholders).map(function (k) {
        return k + " = " + row.placeholders[k];
      }).join(" · ")));
    }
    [["evidence", row.evidence], ["raw answer", row.raw]].forEach(function (pair) {
      if (!pair[1]) { return; }
      var box = el("details");
      box.appendChild(el("summary", null, pair[0]));
      box.appendChild(el("pre", null, pair[1]));
      node.appendChild(box);
    });
    return node;
  }

  function matches(row, words) {
    for (var key in filters) {
      var want = filters[key].value;
      if (want !== "" && String(row[key]) !== want) { return false; }
    }
    for (var i = 0; i < words.length; i++) {
      if (row.haystack.indexOf(words[i]) < 0) { return false; }
    }
    return true;
  }

  function draw() {
    var words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    var found = rows.filter(function (row) { return matches(row, words); });
    list.replaceChildren();
    found.slice(0, shown).forEach(function (row) { list.appendChild(card(row)); });
    count.textContent = found.length + " of " + rows.length + " records match" +
      (found.length > shown ? "; the first " + shown + " are shown" : "");
    more.hidden = found.length <= shown;
  }
  draw();
})();
