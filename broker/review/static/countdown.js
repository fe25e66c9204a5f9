/* Refresh the countdown texts of the breach pages every 30 seconds (progressive enhancement).
 *
 * The server writes the text ("nog 3 u 05 min", "2 u 10 min te laat"); this only keeps it current.
 * Each element has data-deadline (ISO, UTC) and data-now (the server's time when it wrote the page),
 * so a wrong clock on this computer does not change the countdown.
 */
(function () {
  "use strict";

  var elements = Array.prototype.slice.call(document.querySelectorAll("[data-deadline]"));
  if (!elements.length) {
    return;
  }
  var serverNow = Date.parse(elements[0].getAttribute("data-now") || "");
  var offset = isNaN(serverNow) ? 0 : serverNow - Date.now();

  function two(n) {
    return (n < 10 ? "0" : "") + n;
  }

  /* The same text as broker.timefmt.duration_text: "2 d 4 u", "3 u 05 min" or "7 min". */
  function duration(seconds) {
    var minutes = Math.floor(Math.abs(seconds) / 60);
    var days = Math.floor(minutes / (24 * 60));
    var rest = minutes % (24 * 60);
    var hours = Math.floor(rest / 60);
    minutes = rest % 60;
    if (days) {
      return days + " d " + hours + " u";
    }
    if (hours) {
      return hours + " u " + two(minutes) + " min";
    }
    return minutes + " min";
  }

  function update() {
    var now = Date.now() + offset;
    elements.forEach(function (element) {
      var deadline = Date.parse(element.getAttribute("data-deadline"));
      if (isNaN(deadline)) {
        return;
      }
      // Whole seconds, as the server counts: a few milliseconds must not tip a minute over.
      var seconds = Math.round((deadline - now) / 1000);
      var late = seconds <= 0;
      element.textContent = late ? duration(seconds) + " te laat" : "nog " + duration(seconds);
      element.classList.toggle("late", late);
    });
  }

  update();
  window.setInterval(update, 30000);
})();
