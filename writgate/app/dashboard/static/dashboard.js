// writgate dashboard: live updates only. Every page works without this script.
(function () {
  "use strict";

  var refreshing = false;
  var refreshAgain = false;

  // Re-render the server-side regions marked data-refresh from a fresh copy of the page.
  function refresh() {
    if (refreshing) { refreshAgain = true; return; }
    refreshing = true;
    fetch(window.location.pathname + window.location.search, {
      credentials: "same-origin",
      headers: { "Accept": "text/html" },
      cache: "no-store"
    }).then(function (response) {
      if (!response.ok) { throw new Error("HTTP " + response.status); }
      return response.text();
    }).then(function (html) {
      var fresh = new DOMParser().parseFromString(html, "text/html");
      document.querySelectorAll("[data-refresh]").forEach(function (region) {
        var name = region.getAttribute("data-refresh");
        var replacement = fresh.querySelector('[data-refresh="' + name + '"]');
        if (!replacement) { region.hidden = true; return; }
        var typed = {};
        region.querySelectorAll("textarea[name], input[type=text][name], input:not([type])[name]")
          .forEach(function (field) { if (field.value) { typed[field.name] = field.value; } });
        region.replaceChildren.apply(region, Array.prototype.slice.call(replacement.childNodes));
        region.hidden = false;
        Object.keys(typed).forEach(function (fieldName) {
          var field = region.querySelector('[name="' + fieldName + '"]');
          if (field && !field.value) { field.value = typed[fieldName]; }
        });
      });
    }).catch(function () {
      // Keep the page as it is; the next event tries again.
    }).finally(function () {
      refreshing = false;
      if (refreshAgain) { refreshAgain = false; setTimeout(refresh, 100); }
    });
  }

  var refreshTimer = null;
  function scheduleRefresh() {
    if (refreshTimer) { return; }
    refreshTimer = setTimeout(function () { refreshTimer = null; refresh(); }, 150);
  }

  function appendEvent(log, event) {
    var item = document.createElement("li");
    item.setAttribute("data-seq", String(event.seq));
    item.className = "ev ev-" + String(event.type).split(".")[0] + " ev-new";
    var parts = [
      ["seq", String(event.seq)],
      ["time", (String(event.at || "").match(/T(\d\d:\d\d:\d\d)/) || ["", ""])[1]],
      ["type", String(event.type)],
      ["summary", String(event.summary || "")]
    ];
    parts.forEach(function (part) {
      var node = document.createElement(part[0] === "time" ? "time" : "span");
      if (part[0] !== "time") { node.className = part[0]; }
      node.textContent = part[1];  // text, never HTML
      item.appendChild(node);
    });
    log.appendChild(item);
    var box = log.parentElement;
    if (box && box.scrollHeight - box.scrollTop - box.clientHeight < 80) {
      box.scrollTop = box.scrollHeight;
    }
  }

  function follow(section) {
    var base = section.getAttribute("data-live");
    var log = section.querySelector("[data-log]");
    var state = section.querySelector("[data-live-state]");
    var lastSeq = parseInt(section.getAttribute("data-last-seq") || "0", 10) || 0;
    var backoff = 1000;
    var finished = false;
    var reconnects = 0;

    function say(text, kind) {
      if (!state) { return; }
      state.textContent = text;
      state.setAttribute("data-state", kind);
    }

    function connect() {
      var source = new EventSource(base + "?after=" + lastSeq);
      say("connecting…", "connecting");
      source.onopen = function () { backoff = 1000; say("live", "live"); };
      source.onmessage = function (message) {
        var event;
        try { event = JSON.parse(message.data); } catch (e) { return; }
        if (typeof event.seq !== "number" || event.seq <= lastSeq) { return; }  // no duplicates
        lastSeq = event.seq;
        section.setAttribute("data-last-seq", String(lastSeq));
        appendEvent(log, event);
        if (/^(run|stage|pipeline|turn)\./.test(event.type)) { scheduleRefresh(); }
      };
      source.addEventListener("done", function () {
        finished = true;
        source.close();
        say("finished", "finished");
        scheduleRefresh();
      });
      source.onerror = function () {
        if (finished) { return; }
        reconnects += 1;
        section.setAttribute("data-reconnects", String(reconnects));
        if (source.readyState === EventSource.CLOSED) {
          // The browser gave up (e.g. the server restarted): resume after the last event seen.
          say("reconnecting…", "reconnecting");
          setTimeout(connect, backoff);
          backoff = Math.min(backoff * 2, 30000);
        } else {
          say("reconnecting…", "reconnecting");  // the browser retries with Last-Event-ID
        }
      };
    }
    connect();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("section[data-live]").forEach(follow);
  });
})();
