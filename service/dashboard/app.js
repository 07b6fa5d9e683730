/* Forewarn dashboard. Talks to /v1 with the X-API-Key header; the key lives in
 * sessionStorage only (never in a URL, never in localStorage). No external resources. */
(function () {
  "use strict";

  var KEY_STORE = "forewarn.apiKey";
  var STATUS_ZH = {
    draft: "草稿", dropped: "未排期", approved: "已批准", scheduled: "已排期",
    dispatching: "发送中", sent: "已发送", partially_failed: "部分失败", cancelled: "已取消",
    needs_review: "待复核", superseded: "已替代"
  };
  var STATUS_COLOR = {
    draft: "#9e9e9e", dropped: "#bdbdbd", approved: "#1565c0", scheduled: "#00838f",
    dispatching: "#6a1b9a", sent: "#2e7d32", partially_failed: "#ef6c00",
    cancelled: "#757575", needs_review: "#f9a825", superseded: "#bdbdbd"
  };
  var APPROVABLE = { draft: true, needs_review: true };
  // a campaign's effect can be measured once its reminder went out
  var MEASURABLE = { dispatching: true, sent: true, partially_failed: true };
  // campaigns whose window still matters (not withdrawn or replaced)
  var LIVE = { draft: true, approved: true, scheduled: true, dispatching: true, sent: true,
    partially_failed: true, needs_review: true };
  var CANCELLABLE = { draft: true, dropped: true, approved: true, scheduled: true, needs_review: true };

  var state = { scopes: [], series: [], reference: null, regions: [], chart: null,
    upcoming: [], inflight: {}, aborted: 0 };

  function $(id) { return document.getElementById(id); }
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") { node.textContent = attrs[k]; }
      else if (k === "className") { node.className = attrs[k]; }
      else { node.setAttribute(k, attrs[k]); }
    });
    (children || []).forEach(function (c) { node.appendChild(c); });
    return node;
  }
  function fmt(x, digits) {
    if (x === null || x === undefined) { return "—"; }
    return Number(x).toFixed(digits === undefined ? 0 : digits);
  }
  function say(msg, kind) {
    var s = $("status");
    s.textContent = msg || "";
    s.className = "status" + (kind ? " " + kind : "");
  }
  function addDays(iso, n) {
    var d = new Date(iso + "T00:00:00Z");
    d.setUTCDate(d.getUTCDate() + n);
    return d.toISOString().slice(0, 10);
  }
  function key() { return sessionStorage.getItem(KEY_STORE) || ""; }
  function may(scope) {
    return state.scopes.indexOf("admin") >= 0 || state.scopes.indexOf(scope) >= 0;
  }

  function today() { return new Date().toISOString().slice(0, 10); }

  // Problem details come in Chinese (Accept-Language) with a stable `type` code; the
  // dashboard branches on the code, never on the text.
  function problemCode(data) {
    return data && typeof data.type === "string" ? data.type.split(":").pop() : "";
  }

  // options.channel: a new request on the same channel cancels the previous one
  // (repeated clicks never pile up requests); a cancelled request resolves to `undefined`.
  function api(path, options) {
    options = options || {};
    var headers = { "Accept": "application/json", "Accept-Language": "zh-CN,zh;q=0.9",
      "X-API-Key": key() };
    if (options.body !== undefined) { headers["Content-Type"] = "application/json"; }
    var ctl = new AbortController();
    if (options.channel) {
      if (state.inflight[options.channel]) { state.inflight[options.channel].abort(); }
      state.inflight[options.channel] = ctl;
    }
    return fetch(path, {
      method: options.method || "GET", headers: headers, cache: "no-store", signal: ctl.signal,
      body: options.body === undefined ? undefined : JSON.stringify(options.body)
    }).then(function (resp) {
      return resp.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        if (resp.status === 202 && (options.pendingTries || 0) < 120) {
          // the evaluation worker has not computed this yet: ask again after Retry-After
          // (a newer request on the same channel aborts this one, so no stale answer draws)
          var wait = Math.min(10, Math.max(1, parseInt(resp.headers.get("Retry-After") || "2", 10)));
          say("评估结果正在后台计算，" + wait + " 秒后自动刷新……");
          return new Promise(function (res) { setTimeout(res, wait * 1000); }).then(function () {
            if (ctl.signal.aborted) { state.aborted += 1; return undefined; }
            return api(path, Object.assign({}, options, { pendingTries: (options.pendingTries || 0) + 1 }));
          });
        }
        if (!resp.ok) {
          var detail = (data && (data.detail || data.title)) || resp.statusText;
          var err = new Error(detail);
          err.status = resp.status;
          err.code = problemCode(data);
          throw err;
        }
        return data;
      });
    }).catch(function (err) {
      if (err && err.name === "AbortError") { state.aborted += 1; return undefined; }
      if (err && err.code === "unauthorized") { err.message = "API 密钥无效或已过期，请重新连接。"; }
      throw err;
    }).finally(function () {
      if (options.channel && state.inflight[options.channel] === ctl) {
        delete state.inflight[options.channel];
      }
    });
  }

  // ------------------------------------------------------------------ session
  function connect() {
    if (!key()) { say("请输入 API 密钥后点击“连接”。"); return Promise.resolve(); }
    return api("/v1/dashboard/whoami").then(function (me) {
      state.scopes = me.scopes;
      $("whoami").textContent = "已连接：" + me.name + "（权限：" + me.scopes.join(", ") + "）";
      return Promise.all([api("/v1/dashboard/reference"), api("/v1/series?limit=1000"),
        api("/v1/regions"), loadUpcoming()]);
    }).then(function (res) {
      if (!res) { return; }
      state.reference = res[0];
      state.series = res[1].items;
      state.regions = res[2].items;
      var first = state.upcoming[0];
      if (first && !$("category").dataset.touched) {  // open on the most urgent window
        $("signal").value = first.signal || "complaints";
        fillPickers(first.category, first.region);
      } else {
        fillPickers();
      }
      say("");
      return showSeries();
    }).catch(function (err) { say("连接失败：" + err.message, "error"); });
  }

  // Upcoming campaign windows (not yet over), most urgent first: the soonest window, then
  // the most likely.
  function loadUpcoming() {
    return api("/v1/campaigns?limit=500&from=" + addDays(today(), -183)).then(function (data) {
      var now = today();
      state.upcoming = data.items.filter(function (c) {
        return LIVE[c.status] && c.window_end >= now;
      }).sort(function (a, b) {
        return a.window_start < b.window_start ? -1 : a.window_start > b.window_start ? 1 :
          (b.probability || 0) - (a.probability || 0);
      });
      renderUpcoming();
      return state.upcoming;
    });
  }

  function renderUpcoming() {
    var list = $("upcoming");
    list.textContent = "";
    if (!state.upcoming.length) {
      list.appendChild(el("li", { className: "muted", text: "近期没有预测高发期的提示活动" }));
      return;
    }
    state.upcoming.slice(0, 12).forEach(function (c) {
      var days = Math.round((new Date(c.window_start) - new Date(today())) / 86400000);
      var when = days > 0 ? days + " 天后" : "进行中";
      var item = el("li", { "data-id": c.id, "data-series": (c.signal || "complaints") + "|" + c.category + "|" + c.region }, [
        el("button", { type: "button", className: "link", text: c.title }),
        el("span", { className: "muted", text: "  高发期 " + c.window_start + " 至 " + c.window_end + "（" + when + "）· " +
          (STATUS_ZH[c.status] || c.status) + (c.probability === null ? "" : " · 概率 " + fmt(c.probability * 100) + "%") })
      ]);
      item.querySelector("button").addEventListener("click", function () {
        $("signal").value = c.signal || "complaints";
        $("category").dataset.touched = "1";
        fillPickers(c.category, c.region);
        showSeries();
      });
      list.appendChild(item);
    });
  }

  function names(list) {
    var out = {};
    list.forEach(function (x) { out[x.code] = x.name_zh; });
    return out;
  }

  // category picker: categories with series of the signal; region picker: the regions
  // with a series of the signal AND the chosen category, in hierarchy order (league / city
  // followed by its banners / counties), with names.
  function fillPickers(wantCategory, wantRegion) {
    var signal = $("signal").value;
    var catNames = names(state.reference.categories);
    var cats = {};
    state.series.forEach(function (s) { if (s.signal === signal) { cats[s.category] = true; } });
    var catSelect = $("category");
    var previous = wantCategory || catSelect.value;
    catSelect.textContent = "";
    Object.keys(cats).sort(function (a, b) {
      return (catNames[a] || a).localeCompare(catNames[b] || b, "zh-CN");
    }).forEach(function (code) {
      catSelect.appendChild(el("option", { value: code, text: (catNames[code] || code) + "（" + code + "）" }));
    });
    if (previous && cats[previous]) { catSelect.value = previous; }
    if (!wantCategory && !catSelect.dataset.touched) {  // no campaign ahead: the busiest series
      var best = null;
      state.series.forEach(function (s) {
        if (s.signal === signal && (!best || s.total > best.total)) { best = s; }
      });
      if (best) { catSelect.value = best.category; wantRegion = best.region; }
    }
    fillRegions(wantRegion);
  }

  function fillRegions(wantRegion) {
    var signal = $("signal").value, category = $("category").value;
    var have = {};
    state.series.forEach(function (s) {
      if (s.signal === signal && s.category === category) { have[s.region] = true; }
    });
    var select = $("region");
    var previous = wantRegion || select.value;
    select.textContent = "";
    var listed = {};
    state.regions.forEach(function (r) {
      if (!have[r.code]) { return; }
      listed[r.code] = true;
      var indent = new Array(Math.max(0, r.depth - 1) + 1).join("　");
      select.appendChild(el("option", { value: r.code, "data-depth": String(r.depth),
        text: indent + r.name_zh + "（" + r.code + "）" }));
    });
    Object.keys(have).sort().forEach(function (code) {  // codes missing from /v1/regions
      if (!listed[code]) { select.appendChild(el("option", { value: code, text: code })); }
    });
    if (previous && have[previous]) { select.value = previous; }
  }

  function seriesId() {
    return $("signal").value + "|" + $("category").value + "|" + $("region").value;
  }

  // ------------------------------------------------------------------ chart
  function showSeries() {
    var sid = seriesId();
    var weeks = $("history-weeks").value || "104";
    return api("/v1/series/" + encodeURIComponent(sid) + "/chart?history_weeks=" + encodeURIComponent(weeks),
      { channel: "chart" })
      .then(function (chart) {
        if (chart === undefined) { return; }  // replaced by a newer click
        state.chart = chart;
        drawChart(chart);
        return loadCampaigns();
      })
      .catch(function (err) {
        Plotly.purge($("chart"));
        $("chart-title").textContent = "";
        say("无法加载序列 " + sid + "：" + err.message, "error");
        return loadCampaigns();
      });
  }

  function drawChart(c) {
    var sigName = c.signal === "complaints" ? "投诉" : "违法行为";
    $("chart-title").textContent = c.region_name + " · " + c.category_name + "（" + sigName + "）" +
      "  — 数据 " + (c.data_from || "—") + " 至 " + (c.data_to || "—") +
      (c.run_id ? "，预测批次 " + c.run_id.slice(0, 8) : "，尚无预测");
    var traces = [];
    if (c.history.length) {
      traces.push({ x: c.history.map(function (h) { return h.week; }), y: c.history.map(function (h) { return h.count; }),
        type: "scatter", mode: "lines", name: "实际（周）", line: { color: "#444", width: 1.5 } });
    }
    if (c.forecast.length) {
      var wk = c.forecast.map(function (f) { return f.week; });
      traces.push({ x: wk, y: c.forecast.map(function (f) { return f.lower_80; }), type: "scatter", mode: "lines",
        line: { width: 0 }, hoverinfo: "skip", showlegend: false, name: "下限" });
      traces.push({ x: wk, y: c.forecast.map(function (f) { return f.upper_80; }), type: "scatter", mode: "lines",
        fill: "tonexty", fillcolor: "rgba(31,111,180,0.22)", line: { width: 0 }, name: "80% 区间" });
      traces.push({ x: wk, y: c.forecast.map(function (f) { return f.expected; }), type: "scatter", mode: "lines",
        name: "预测（周）", line: { color: "#1f6fb4", width: 2 } });
      traces.push({ x: wk, y: c.forecast.map(function (f) { return f.p_spike; }), type: "bar", name: "高发概率",
        marker: { color: "rgba(198,40,40,0.7)" }, xaxis: "x", yaxis: "y2" });
    }
    var shapes = [], annotations = [];
    if (c.threshold !== null && c.threshold !== undefined) {
      shapes.push({ type: "line", xref: "paper", x0: 0, x1: 1, yref: "y", y0: c.threshold, y1: c.threshold,
        line: { color: "#c62828", dash: "dash", width: 1 } });
      annotations.push({ xref: "paper", x: 1, yref: "y", y: c.threshold, text: "高发阈值 " + fmt(c.threshold, 1),
        showarrow: false, xanchor: "right", yanchor: "bottom", font: { size: 11, color: "#c62828" } });
    }
    c.peaks.forEach(function (p) {
      shapes.push({ type: "rect", xref: "x", yref: "paper", x0: p.start, x1: p.end, y0: 0, y1: 1,
        fillcolor: "rgba(255,127,14,0.15)", line: { width: 0 }, layer: "below" });
    });
    // the run's decision threshold for the category: weeks at or above it are warned of
    var note = $("decision-note");
    if (c.decision) {
      shapes.push({ type: "line", xref: "paper", x0: 0, x1: 1, yref: "y2", y0: c.decision.threshold,
        y1: c.decision.threshold, line: { color: "#6a1b9a", dash: "dot", width: 1.5 }, name: "decision" });
      annotations.push({ xref: "paper", x: 0, yref: "y2", y: c.decision.threshold,
        text: "预警阈值 " + String(Math.round(c.decision.threshold * 1000) / 1000), showarrow: false, xanchor: "left",
        yanchor: "bottom", font: { size: 11, color: "#6a1b9a" } });
      var opens = c.decision.opens_at;
      if (opens != null && opens > c.decision.threshold) {  // hysteresis: a window opens only where P reaches this level
        shapes.push({ type: "line", xref: "paper", x0: 0, x1: 1, yref: "y2", y0: opens, y1: opens,
          line: { color: "#6a1b9a", dash: "dash", width: 1 }, name: "opens" });
        annotations.push({ xref: "paper", x: 0, yref: "y2", y: opens,
          text: "开启 " + String(Math.round(opens * 1000) / 1000), showarrow: false, xanchor: "left",
          yanchor: "bottom", font: { size: 11, color: "#6a1b9a" } });
        note.dataset.opens = String(opens);
      } else {
        delete note.dataset.opens;
      }
      note.textContent = "预警规则：" + c.decision.explanation;
      note.dataset.threshold = String(c.decision.threshold);
    } else {
      note.textContent = c.run_id ? "该预测批次未记录预警阈值。" : "";
      delete note.dataset.threshold;
      delete note.dataset.opens;
    }
    var dates = c.history.map(function (h) { return h.week; }).concat(c.forecast.map(function (f) { return f.week; }));
    var xmin = dates.length ? dates[0] : null, xmax = dates.length ? dates[dates.length - 1] : null;
    function inRange(d) { return xmin === null || (d >= xmin && d <= addDays(xmax, 7)); }
    c.campaigns.forEach(function (cp) {
      if (cp.status === "superseded") { return; }
      var color = STATUS_COLOR[cp.status] || "#555";
      var dash = cp.status === "cancelled" ? "dot" : "solid";
      // the campaign's window: an outlined box over the count panel
      shapes.push({ type: "rect", xref: "x", yref: "paper", x0: cp.window_start, x1: addDays(cp.window_end, 1),
        y0: 0.32, y1: 0.97, fillcolor: "rgba(0,0,0,0)", line: { color: color, width: 1.5, dash: dash } });
      annotations.push({ xref: "x", x: cp.window_start, yref: "paper", y: 0.97, text: "提示·" + (STATUS_ZH[cp.status] || cp.status),
        showarrow: false, xanchor: "left", yanchor: "bottom", font: { size: 11, color: color } });
      if (inRange(cp.send_date)) {  // the send date, when it falls on the chart
        shapes.push({ type: "line", xref: "x", yref: "paper", x0: cp.send_date, x1: cp.send_date, y0: 0.32, y1: 0.97,
          line: { color: color, width: 1, dash: "dot" } });
      }
    });
    // today and the end of the data the forecast was fitted on
    var marks = [[today(), "今天", "#2e7d32"]];
    var dataEnd = c.train_until || (c.history.length ? addDays(c.history[c.history.length - 1].week, 6) : null);
    if (dataEnd) { marks.push([dataEnd, "数据截至 " + dataEnd, "#555"]); }
    marks.forEach(function (m, i) {
      if (!inRange(m[0])) { return; }
      shapes.push({ type: "line", xref: "x", yref: "paper", x0: m[0], x1: m[0], y0: 0, y1: 1,
        line: { color: m[2], width: 1.5, dash: i ? "dash" : "solid" } });
      annotations.push({ xref: "x", x: m[0], yref: "paper", y: i ? 0.27 : 0.3, text: m[1], showarrow: false,
        xanchor: "left", yanchor: "bottom", font: { size: 11, color: m[2] }, name: i ? "data-end" : "today" });
    });
    var layout = {
      margin: { l: 55, r: 20, t: 10, b: 40 }, hovermode: "x unified", bargap: 0.15,
      legend: { orientation: "h", y: 1.08 },
      xaxis: { type: "date", anchor: "y2", range: xmin === null ? undefined : [addDays(xmin, -7), addDays(xmax, 14)] },
      yaxis: { domain: [0.32, 1], title: { text: "件数/周" }, rangemode: "tozero" },
      yaxis2: { domain: [0, 0.24], range: [0, 1], title: { text: "高发概率" }, tickformat: ".0%" },
      shapes: shapes, annotations: annotations
    };
    Plotly.react($("chart"), traces, layout, { displaylogo: false, responsive: true });
    var link = $("png-link");
    link.hidden = false;
    link.dataset.series = c.series_id;
  }

  // ------------------------------------------------------------------ campaigns
  function loadCampaigns() {
    var q = "/v1/campaigns?limit=200";
    if (!$("all-campaigns").checked) {
      q += "&category=" + encodeURIComponent($("category").value) + "&region=" + encodeURIComponent($("region").value);
    }
    return api(q, { channel: "campaigns" }).then(function (data) { if (data) { renderCampaigns(data.items); } })
      .catch(function (err) { say("无法加载提示活动：" + err.message, "error"); });
  }

  function actionButton(label, cls, onClick) {
    var b = el("button", { type: "button", className: cls, text: label });
    b.addEventListener("click", function () { b.disabled = true; onClick().finally(function () { b.disabled = false; }); });
    return b;
  }

  function renderCampaigns(items) {
    var body = $("campaigns").querySelector("tbody");
    body.textContent = "";
    if (!items.length) {
      body.appendChild(el("tr", {}, [el("td", { colspan: "6", className: "muted", text: "暂无提示活动" })]));
      return;
    }
    items.forEach(function (cp) {
      var actions = el("td", {});
      if (APPROVABLE[cp.status] && may("approve")) {
        actions.appendChild(actionButton("批准", "primary approve", function () { return act(cp, "approve"); }));
      }
      if (CANCELLABLE[cp.status] && may("approve")) {
        actions.appendChild(actionButton("取消", "danger cancel", function () { return act(cp, "cancel"); }));
      }
      actions.appendChild(actionButton("预览", "preview-btn", function () { return showPreview(cp); }));
      if (MEASURABLE[cp.status]) {  // a draft has no effect to measure
        actions.appendChild(actionButton("效果", "effect-btn", function () { return showEffect(cp); }));
      }
      var badge = el("span", { className: "badge", text: STATUS_ZH[cp.status] || cp.status });
      badge.style.background = STATUS_COLOR[cp.status] || "#555";
      var row = el("tr", { "data-id": cp.id, "data-status": cp.status }, [
        el("td", { text: cp.title }), el("td", {}, [badge]), el("td", { text: cp.send_date }),
        el("td", { text: cp.window_start + " 至 " + cp.window_end }),
        el("td", { className: "num", text: cp.probability === null ? "—" : fmt(cp.probability * 100) + "%" }),
        actions
      ]);
      body.appendChild(row);
    });
  }

  function act(cp, what) {
    var label = what === "approve" ? "批准" : "取消";
    var body = what === "approve" ? { note: "通过看板批准" } : { reason: "通过看板取消" };
    return api("/v1/campaigns/" + encodeURIComponent(cp.id) + "/" + what, { method: "POST", body: body })
      .then(function (res) {
        say("已" + label + "：" + res.title + "（状态：" + (STATUS_ZH[res.status] || res.status) + "）", "ok");
        loadUpcoming();
        return showSeries();
      })
      .catch(function (err) { say(label + "失败：" + err.message, "error"); });
  }

  // the reminder in every language of its category, side by side (issue 16): Chinese first,
  // Mongolian in traditional script (vertical columns); a placeholder is marked as such
  var LANGUAGE_ZH = { zh: "中文", mn: "蒙古文（传统蒙古文）" };
  function showPreview(cp) {
    return api("/v1/campaigns/" + encodeURIComponent(cp.id) + "/preview?channel=public",
      { channel: "preview" }).then(function (pv) {
      if (pv === undefined) { return; }  // replaced by a newer click
      var box = $("preview");
      box.hidden = false;
      box.textContent = "";
      box.dataset.id = cp.id;
      box.dataset.frozen = String(pv.frozen);
      box.appendChild(el("h3", { text: "提示预览：" + pv.subject + (pv.frozen ?
        "（批准时已冻结：即将发送的文本）" : "（未批准：按当前模板生成，批准时冻结）") }));
      var cols = el("div", { className: "variants" });
      pv.texts.forEach(function (t) {
        var col = el("div", { className: "variant", "data-language": t.language });
        col.appendChild(el("h4", { text: (LANGUAGE_ZH[t.language] || t.language) + "（" + t.tag + "）" }));
        if (t.status !== "official") {
          col.appendChild(el("p", { className: "placeholder-note",
            text: "⚠ " + (t.note || "占位文本，非官方译文，不得作为正式提示发布。") }));
        }
        col.appendChild(el("div", { className: "text lang-" + t.language, lang: t.tag, text: t.body }));
        cols.appendChild(col);
      });
      box.appendChild(cols);
    }).catch(function (err) { say("无法预览：" + err.message, "error"); });
  }

  function pct(x) { return x === null || x === undefined ? "—" : fmt(x * 100) + "%"; }
  function zhDate(d) {
    if (!d) { return "—"; }
    var p = String(d).split("-");
    return Number(p[0]) + "年" + Number(p[1]) + "月" + Number(p[2]) + "日";
  }
  function mdeText(est) {
    if (!est || est.mde === null || est.mde === undefined) { return ""; }
    return "最小可检测效应 " + pct(est.mde) + "（80% 把握、双侧 5% 水平）" +
      (est.campaigns_needed ? "；合并约 " + est.campaigns_needed + " 个同类活动才能检测出 −20% 的效果" : "") + "。";
  }
  // the Chinese state of a campaign's effect (issue 14): sent campaigns only
  function effectState(e) {
    if (e.evaluation === "pending") {
      return "尚待评估：窗口内尚无完整一周的数据。" + zhDate(e.measurable_from) + "起可出中期估计，" +
        zhDate(e.complete_on) + "起可出完整估计。";
    }
    if (e.evaluation === "unavailable") { return "无法评估：" + (e.reason_zh || e.reason || "原因未知"); }
    if (e.evaluation === "interim") {
      return "中期估计：已观测 " + e.weeks_observed + "/" + e.weeks_in_window + " 周，" + zhDate(e.complete_on) + "起可出完整估计。";
    }
    return "";
  }

  function showEffect(cp) {
    var box = $("effect");
    function show(lines) {
      box.hidden = false;
      box.textContent = "";
      box.appendChild(el("h3", { text: "效果评估：" + cp.title }));
      lines.forEach(function (t) { if (t) { box.appendChild(el("p", { text: t })); } });
    }
    return api("/v1/campaigns/" + encodeURIComponent(cp.id) + "/effect", { channel: "effect" }).then(function (e) {
      if (e === undefined) { return; }  // replaced by a newer click
      var lines = [effectState(e)];
      if (e.counterfactual) {
        var cf = e.counterfactual;
        var uncal = e.calibration && e.calibration.status === "uncalibrated";
        lines.push((uncal ? "（未校准，不计入考核）" : "（已按 " + (e.calibration ? e.calibration.n_placebos : 0) +
            " 个无活动高发期校准）") + "实际 " + fmt(cf.actual) + " 件，冻结预测 " +
          fmt(cf.counterfactual, 1) + " 件；效果 " + fmt(cf.effect, 1) + " 件（" +
          pct(cf.relative_effect) + "），95% 区间 [" +
          fmt(cf.effect_lower_95, 1) + ", " + fmt(cf.effect_upper_95, 1) + "]，减少的概率 " + pct(cf.p_reduced) + "。" +
          mdeText(cf));
      }
      if (e.did) {
        var d = e.did;
        if (d.status === "ok" || d.status === "no_interval") {
          lines.push("双重差分（对照 " + d.controls.length + " 个地区）：效果 " + fmt(d.effect, 1) + " 件（" +
            pct(d.relative_effect) + "）" + (d.status === "ok" ? "，95% 区间 [" + fmt(d.effect_lower_95, 1) +
            ", " + fmt(d.effect_upper_95, 1) + "]" : "（无区间：对照期数据不足）") + "。" + mdeText(d));
        } else {
          lines.push("双重差分：无合适对照地区（同类别其他地区在窗口内或之前也有活动，或历史走势不相似）。");
        }
      }
      if (e.evaluation === "complete" || e.evaluation === "interim") {
        lines.push("单次活动的估计区间较宽，很难显著；请看“考核”页按类别合并的效果。");
      }
      if (computedText(e)) { lines.push(computedText(e)); }
      show(lines);
    }).catch(function (err) {
      if (err.status === 409) {
        show(["尚未发送（当前状态：" + (STATUS_ZH[cp.status] || cp.status) + "），只有已发送的活动才评估效果。"]);
        return;
      }
      say("无法评估：" + err.message, "error");
    });
  }

  function pooledText(p) {
    if (!p || !p.headline) { return ["—", "—", "—"]; }
    var est = p[p.headline];
    var name = { randomised: "随机化", did: "双重差分", counterfactual: "反事实" }[p.headline];
    return [pct(est.relative_effect) + " [" + pct(est.relative_lower_95) + ", " + pct(est.relative_upper_95) + "]" +
              "（" + name + "，" + est.k + (p.headline === "randomised" ? " 期" : " 个活动") + (est.significant ? "，显著" : "") + "）",
            pct(est.mde), est.campaigns_needed ? String(est.campaigns_needed) : "—"];
  }

  // ------------------------------------------------------------------ scorecard
  // when the evaluation worker computed the figures shown (materialised evaluation)
  function computedText(x) {
    var m = x && x.materialised;
    if (!m || !m.computed_at) { return ""; }
    return "计算于 " + m.computed_at.slice(0, 16).replace("T", " ") + " UTC" +
      (m.recompute_pending ? "（数据已更新，正在重新计算）" : "");
  }
  function loadScorecard() {
    var q = "/v1/evaluation?group_by=" + encodeURIComponent($("group-by").value);
    if ($("score-from").value) { q += "&from=" + encodeURIComponent($("score-from").value); }
    if ($("score-to").value) { q += "&to=" + encodeURIComponent($("score-to").value); }
    say("正在计算……");
    return api(q, { channel: "scorecard" }).then(function (sc) {
      if (sc === undefined) { return; }
      var body = $("scorecard").querySelector("tbody");
      body.textContent = "";
      sc.groups.concat([sc.total]).forEach(function (g, i) {
        var pooled = pooledText(g.pooled);
        var tr = el("tr", { className: i === sc.groups.length ? "total" : "" }, [
          el("td", { text: g.label }),
          el("td", { className: "num pooled", text: pooled[0] }),
          el("td", { className: "num", text: pooled[1] }),
          el("td", { className: "num", text: pooled[2] }),
          el("td", { className: "num", text: String(g.campaigns) }),
          el("td", { className: "num", text: String(g.campaigns_sent) }),
          el("td", { className: "num", text: String(g.spike_windows) }),
          el("td", { className: "num", text: g.spike_windows_caught + (g.catch_rate === null ? "" : "（" + fmt(g.catch_rate * 100) + "%）") }),
          el("td", { className: "num", text: fmt(g.median_lead_days) }),
          el("td", { className: "num", text: String(g.campaigns_evaluated) }),
          el("td", { className: "num", text: fmt(g.avoided, 1) }),
          el("td", { className: "num", text: g.avoided === null ? "—" : "[" + fmt(g.avoided_lower_80, 1) + ", " + fmt(g.avoided_upper_80, 1) + "]" }),
          el("td", { className: "num", text: g.avoided === null ? "—" : "[" + fmt(g.avoided_lower_95, 1) + ", " + fmt(g.avoided_upper_95, 1) + "]" }),
          el("td", { className: "num", text: String(g.deliveries_failed) })
        ]);
        body.appendChild(tr);
      });
      say("考核口径：" + (sc.signal === "complaints" ? "投诉" : "违法行为") + "。" + computedText(sc), "ok");
    }).catch(function (err) { say("无法计算考核：" + err.message, "error"); });
  }

  // ------------------------------------------------------------------ wiring
  function downloadPng(ev) {
    ev.preventDefault();
    var sid = $("png-link").dataset.series;
    if (!sid) { return; }
    fetch("/v1/series/" + encodeURIComponent(sid) + "/forecast.png", { headers: { "X-API-Key": key() } })
      .then(function (resp) { if (!resp.ok) { throw new Error(String(resp.status)); } return resp.blob(); })
      .then(function (blob) {
        var a = el("a", { href: URL.createObjectURL(blob), download: sid.replace(/\|/g, "_") + ".png" });
        document.body.appendChild(a); a.click(); a.remove();
      }).catch(function (err) { say("PNG 生成失败：" + err.message, "error"); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    $("key-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var v = $("api-key").value.trim();
      if (v) { sessionStorage.setItem(KEY_STORE, v); }
      $("api-key").value = "";
      connect();
    });
    $("key-clear").addEventListener("click", function () {
      sessionStorage.removeItem(KEY_STORE);
      state.scopes = [];
      state.chart = null;
      $("whoami").textContent = "";
      $("campaigns").querySelector("tbody").textContent = "";
      $("scorecard").querySelector("tbody").textContent = "";
      $("effect").hidden = true;
      $("preview").hidden = true;
      $("chart-title").textContent = "";
      Plotly.purge($("chart"));
      say("已退出。");
    });
    $("series-form").addEventListener("submit", function (ev) { ev.preventDefault(); showSeries(); });
    $("signal").addEventListener("change", function () { fillPickers(); showSeries(); });
    $("category").addEventListener("change", function () {
      $("category").dataset.touched = "1"; fillRegions(); showSeries();
    });
    $("region").addEventListener("change", function () { $("category").dataset.touched = "1"; showSeries(); });
    $("all-campaigns").addEventListener("change", loadCampaigns);
    $("png-link").addEventListener("click", downloadPng);
    $("score-form").addEventListener("submit", function (ev) { ev.preventDefault(); loadScorecard(); });
    Array.prototype.forEach.call(document.querySelectorAll(".tab"), function (tab) {
      tab.addEventListener("click", function () {
        Array.prototype.forEach.call(document.querySelectorAll(".tab"), function (t) { t.classList.remove("active"); });
        Array.prototype.forEach.call(document.querySelectorAll(".view"), function (v) { v.hidden = true; });
        tab.classList.add("active");
        $(tab.dataset.tab).hidden = false;
        if (tab.dataset.tab === "score-view") { loadScorecard(); }
        else if (state.chart) { Plotly.Plots.resize($("chart")); }
      });
    });
    if (typeof Plotly === "undefined") { say("图表库未加载（plotly.min.js）。", "error"); return; }
    // for tests and the console: the state and the cancellable loaders
    window.forewarnDashboard = { state: state, showSeries: showSeries, loadScorecard: loadScorecard };
    connect();
  });
})();
