/* explain attention view: head view and model view of one AttentionResult.
 * Self-contained: no library, no network. Runs once per view; every element it touches lives
 * under the view's own root element (found by its unique id), so several views in one page are
 * independent. All user text is inserted with textContent, never as HTML. */
(function (rootId) {
  "use strict";
  var root = document.getElementById(rootId);
  var source = document.getElementById(rootId + "-data");
  if (!root || !source || root.getAttribute("data-ready") === "1") { return; }
  var data = JSON.parse(source.textContent);
  var ROW = 20, LINE_WIDTH = 150, THUMB = 78;
  var start = data.start || {kind: data.kinds[0], layer: data.layers.length - 1, head: -1};
  var state = {
    text: 0, kind: start.kind, level: "token", layer: start.layer, head: start.head,
    hide: false, mode: "head", focus: null, locked: false
  };
  var cache = {};

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }
  function svgEl(tag, attrs) {
    var node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (var key in attrs) { node.setAttribute(key, attrs[key]); }
    return node;
  }
  function decode(b64) {
    var raw = atob(b64), out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { out[i] = raw.charCodeAt(i); }
    return out;
  }
  function block() {
    var key = state.text + "|" + state.kind + "|" + state.level;
    if (!cache[key]) {
      var b = data.texts[state.text].maps[state.kind][state.level];
      cache[key] = {q: b.q, k: b.k, qs: b.qs, ks: b.ks, w: decode(b.w),
                    L: data.layers.length, H: data.heads.length, Tq: b.q.length, Tk: b.k.length};
    }
    return cache[key];
  }
  function weight(b, layer, head, i, j) {
    if (head >= 0) { return b.w[((layer * b.H + head) * b.Tq + i) * b.Tk + j] / 255; }
    var total = 0;
    for (var h = 0; h < b.H; h++) { total += b.w[((layer * b.H + h) * b.Tq + i) * b.Tk + j]; }
    return total / (255 * b.H);
  }
  function visible(labels, specials) {
    var out = [];
    for (var i = 0; i < labels.length; i++) {
      if (!(state.hide && specials[i])) { out.push(i); }
    }
    return out.length ? out : labels.map(function (_, i) { return i; });
  }

  /* ---- controls ---- */
  function select(label, options, value, onChange, name) {
    var wrap = el("label", "ea-control");
    wrap.appendChild(el("span", null, label));
    var box = el("select");
    box.setAttribute("data-control", name);
    options.forEach(function (option) {
      var item = el("option", null, option[1]);
      item.value = String(option[0]);
      if (String(option[0]) === String(value)) { item.selected = true; }
      box.appendChild(item);
    });
    box.addEventListener("change", function () { onChange(box.value); });
    wrap.appendChild(box);
    return wrap;
  }
  function controls() {
    var bar = el("div", "ea-controls");
    if (data.texts.length > 1) {
      bar.appendChild(select("text", data.texts.map(function (t, i) {
        var s = t.text.length > 40 ? t.text.slice(0, 39) + "\u2026" : t.text;
        return [i, (i + 1) + ": " + s];  // readers count texts from 1
      }), state.text, function (v) { state.text = +v; reset(); }, "text"));
    }
    if (data.kinds.length > 1) {
      bar.appendChild(select("attention", data.kinds.map(function (k) { return [k, k]; }),
        state.kind, function (v) { state.kind = v; reset(); }, "attention"));
    }
    bar.appendChild(select("level", [["token", "tokens"], ["word", "words"]], state.level,
      function (v) { state.level = v; reset(); }, "level"));
    bar.appendChild(select("layer", data.layers.map(function (l, i) { return [i, l]; }),
      state.layer, function (v) { state.layer = +v; reset(); }, "layer"));
    bar.appendChild(select("head", [[-1, "mean"]].concat(data.heads.map(function (h, i) {
      return [i, h];
    })), state.head, function (v) { state.head = +v; reset(); }, "head"));
    var hide = el("label", "ea-control");
    var box = el("input");
    box.type = "checkbox";
    box.checked = state.hide;
    box.setAttribute("data-control", "hide-special");
    box.addEventListener("change", function () { state.hide = box.checked; reset(); });
    hide.appendChild(box);
    hide.appendChild(el("span", null, "hide special tokens"));
    bar.appendChild(hide);
    var modes = el("span", "ea-modes");
    [["head", "head view"], ["model", "model view"]].forEach(function (m) {
      var button = el("button", state.mode === m[0] ? "ea-on" : "", m[1]);
      button.type = "button";
      button.setAttribute("data-mode", m[0]);
      button.addEventListener("click", function () { state.mode = m[0]; reset(); });
      modes.appendChild(button);
    });
    bar.appendChild(modes);
    return bar;
  }

  /* ---- head view ---- */
  function headView(b) {
    var qi = visible(b.q, b.qs), ki = visible(b.k, b.ks);
    var wrap = el("div", "ea-head");
    var left = el("div", "ea-col ea-left"), right = el("div", "ea-col ea-right");
    var height = Math.max(qi.length, ki.length) * ROW;
    var svg = svgEl("svg", {width: LINE_WIDTH, height: height, "class": "ea-lines"});
    var lines = [];
    // Skip faint lines (below half of uniform attention, at most 0.01) to keep the SVG light.
    var threshold = Math.min(0.01, 0.5 / b.Tk);
    qi.forEach(function (i, a) {
      ki.forEach(function (j, c) {
        var w = weight(b, state.layer, state.head, i, j);
        if (w < threshold) { return; }
        var line = svgEl("line", {x1: 2, y1: a * ROW + ROW / 2, x2: LINE_WIDTH - 2,
                                  y2: c * ROW + ROW / 2, "stroke-opacity": Math.min(1, Math.sqrt(w)).toFixed(3),
                                  "class": "ea-line"});
        line.__q = i; line.__k = j; line.__w = w;
        svg.appendChild(line);
        lines.push(line);
      });
    });
    var leftTokens = [], rightTokens = [];
    function token(label, index, side, special) {
      var node = el("div", "ea-tok" + (special ? " ea-special" : ""), label);
      node.setAttribute("data-side", side);
      node.setAttribute("data-index", index);
      node.title = label;
      node.addEventListener("mouseenter", function () { if (!state.locked) { focus(side, index); } });
      node.addEventListener("mouseleave", function () { if (!state.locked) { focus(null); } });
      node.addEventListener("click", function () {
        if (state.locked && state.focus && state.focus.side === side && state.focus.index === index) {
          state.locked = false; focus(null);
        } else { state.locked = true; focus(side, index); }
      });
      return node;
    }
    qi.forEach(function (i) { var t = token(b.q[i], i, "query", b.qs[i]); leftTokens.push(t); left.appendChild(t); });
    ki.forEach(function (j) { var t = token(b.k[j], j, "key", b.ks[j]); rightTokens.push(t); right.appendChild(t); });
    function focus(side, index) {
      state.focus = side ? {side: side, index: index} : null;
      root.setAttribute("data-focus", side ? side + ":" + index : "");
      root.setAttribute("data-locked", state.locked ? "1" : "0");
      svg.classList.toggle("ea-focused", !!side);
      lines.forEach(function (line) {
        var on = side === "query" ? line.__q === index : side === "key" ? line.__k === index : false;
        line.classList.toggle("ea-active", on);
      });
      var others = side === "query" ? rightTokens : side === "key" ? leftTokens : [];
      leftTokens.concat(rightTokens).forEach(function (t) {
        t.style.backgroundColor = "";
        t.removeAttribute("data-weight");
        t.classList.remove("ea-selected");
      });
      if (!side) { return; }
      (side === "query" ? leftTokens : rightTokens).forEach(function (t) {
        if (+t.getAttribute("data-index") === index) { t.classList.add("ea-selected"); }
      });
      others.forEach(function (t) {
        var other = +t.getAttribute("data-index");
        var w = side === "query" ? weight(b, state.layer, state.head, index, other)
                                 : weight(b, state.layer, state.head, other, index);
        t.style.backgroundColor = "rgba(43, 108, 176, " + Math.min(1, w * 1.5).toFixed(3) + ")";
        t.setAttribute("data-weight", w.toFixed(3));
        t.title = t.textContent + ": " + w.toFixed(3);
      });
    }
    wrap.appendChild(left);
    wrap.appendChild(svg);
    wrap.appendChild(right);
    return wrap;
  }

  /* ---- model view ---- */
  function modelView(b) {
    var qi = visible(b.q, b.qs), ki = visible(b.k, b.ks);
    var grid = el("div", "ea-grid");
    grid.style.gridTemplateColumns = "auto repeat(" + b.H + ", " + (THUMB + 4) + "px)";
    grid.appendChild(el("span"));
    data.heads.forEach(function (h) { grid.appendChild(el("span", "ea-axis", "head " + h)); });
    data.layers.forEach(function (layerName, l) {
      grid.appendChild(el("span", "ea-axis", "layer " + layerName));
      for (var h = 0; h < b.H; h++) {
        var canvas = el("canvas", "ea-thumb" + (l === state.layer && h === state.head ? " ea-current" : ""));
        canvas.width = THUMB; canvas.height = THUMB;
        canvas.setAttribute("data-layer", l);
        canvas.setAttribute("data-head", h);
        canvas.title = "layer " + layerName + ", head " + data.heads[h] + " (click for the head view)";
        // One pixel per (query, key) in an off-screen canvas, then scaled to the thumbnail.
        var cells = document.createElement("canvas");
        cells.width = ki.length; cells.height = qi.length;
        var cellsCtx = cells.getContext("2d");
        var image = cellsCtx.createImageData(ki.length, qi.length);
        for (var a = 0; a < qi.length; a++) {
          for (var c = 0; c < ki.length; c++) {
            var w = weight(b, l, h, qi[a], ki[c]), p = 4 * (a * ki.length + c);
            image.data[p] = 43; image.data[p + 1] = 108; image.data[p + 2] = 176;
            image.data[p + 3] = Math.round(255 * Math.sqrt(w));
          }
        }
        cellsCtx.putImageData(image, 0, 0);
        var ctx = canvas.getContext("2d");
        ctx.imageSmoothingEnabled = ki.length > THUMB || qi.length > THUMB;  // average when shrinking
        ctx.drawImage(cells, 0, 0, THUMB, THUMB);
        (function (layer, head) {
          canvas.addEventListener("click", function () {
            state.layer = layer; state.head = head; state.mode = "head"; reset();
          });
        })(l, h);
        grid.appendChild(canvas);
      }
    });
    return grid;
  }

  function reset() {
    state.focus = null;
    state.locked = false;
    render();
  }
  function render() {
    while (root.firstChild) { root.removeChild(root.firstChild); }
    var text = data.texts[state.text];
    var b = block();
    root.setAttribute("data-ready", "1");
    root.setAttribute("data-mode", state.mode);
    root.setAttribute("data-layer", data.layers[state.layer]);
    root.setAttribute("data-head", state.head < 0 ? "mean" : data.heads[state.head]);
    root.setAttribute("data-focus", "");
    root.appendChild(el("div", "ea-title", data.title));
    root.appendChild(controls());
    var notes = [];
    if (text.truncated) { notes.push("this text was truncated to " + data.maxLength + " tokens"); }
    if (text.cropped) { notes.push(text.cropped); }
    if (data.note) { notes.push(data.note); }
    if (data.start && data.start.why) { notes.push(data.start.why); }
    if (notes.length) { root.appendChild(el("div", "ea-note", notes.join("; "))); }
    var help = state.mode === "head"
      ? "Hover a token to see its attention (left: queries, right: keys); click to keep it."
      : "Each square is one head (rows: queries, columns: keys); click one to open it.";
    root.appendChild(el("div", "ea-help", help));
    root.appendChild(state.mode === "head" ? headView(b) : modelView(b));
  }
  render();
})
