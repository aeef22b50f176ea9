// relay console: new events join the events list without a reload. A file of the console's
// own (the Content-Security-Policy allows no inline script): it asks /console/events/new for
// the rows that came since the newest one shown, with the list's filters, and puts them on
// top. Without script the page keeps its plain link to that address.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var body = document.querySelector("table.events tbody");
  if (!live || !body || !live.dataset.poll) {
    return;
  }
  var url = live.dataset.poll;
  var interval = parseInt(live.dataset.interval, 10) || 5000;
  var added = 0;

  function say(text, href) {
    live.textContent = text;
    if (href) {
      var link = document.createElement("a");
      link.href = href;
      link.textContent = "show";
      live.append(" — ", link);
    }
  }

  function take(html) {
    var found = new DOMParser().parseFromString(html, "text/html").querySelector("tbody");
    if (!found) {
      return true;
    }
    if (found.dataset.more === "1") {  // too many to add: offer the fresh list instead
      say("Many new events", "/console/events" + url.slice(url.indexOf("?")).replace(/&?after=\d*/, ""));
      return false;
    }
    var rows = Array.prototype.slice.call(found.rows);
    for (var i = rows.length - 1; i >= 0; i--) {
      var row = document.importNode(rows[i], true);
      row.classList.add("fresh");
      body.insertBefore(row, body.firstChild);
    }
    if (rows.length) {
      added += rows.length;
      url = url.replace(/([?&]after=)\d*/, "$1" + found.dataset.newest);
      say(added + " new event(s) appeared above.");
      var empty = document.querySelector("p.empty");
      if (empty) {
        empty.remove();
      }
    }
    return true;
  }

  function poll() {
    fetch(url + "&part=rows", { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (answer) {
        return answer.ok ? answer.text() : "";
      })
      .then(function (html) {
        if (!html || take(html)) {
          window.setTimeout(poll, interval);
        }
      }, function () {
        window.setTimeout(poll, interval * 2);  // relay restarting: try again later
      });
  }

  live.textContent = "Watching for new events…";
  window.setTimeout(poll, interval);
})();
