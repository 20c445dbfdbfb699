// The notifications sidebar: arrivals in every room, over server-sent
// events. When the stream drops (a network error, the server ending it at
// a restart) EventSource reconnects by itself, after the retry: delay the
// stream set, and sends Last-Event-ID, so it resumes where it was: the
// page leaves that to the browser. The page opens the stream again, with
// ?last_event_id= the last notice shown, only when the browser gave up
// (an answer that was no stream, e.g. 503) and when the network is back
// after the page closed the stream on going offline.
(function () {
  'use strict';

  var list = document.getElementById('notifications');
  if (!list || !window.EventSource) { return; }
  var url = list.dataset.streamUrl;
  var source = null;
  var last = null;
  var reopening = null;  // the timer of a reopen after the browser gave up
  var KEEP = 20;  // notices shown at most
  var REOPEN = 3000;  // ms before reopening a stream the browser gave up

  function add(className, text) {
    var li = document.createElement('li');
    li.className = className;
    li.textContent = text;
    list.appendChild(li);
    while (list.children.length > KEEP) { list.removeChild(list.firstChild); }
  }

  function stop() {
    clearTimeout(reopening);
    if (source) { source.close(); }
  }

  function open() {
    stop();
    var target = url;
    if (last) { target += '?last_event_id=' + encodeURIComponent(last); }
    var opened = source = new EventSource(target);
    opened.onopen = function () { list.dataset.state = 'live'; };
    opened.onerror = function () {
      list.dataset.state = 'reconnecting';
      if (opened.readyState === EventSource.CLOSED && navigator.onLine) {
        reopening = setTimeout(open, REOPEN);
      }  // else CONNECTING: the browser retries, with Last-Event-ID
    };
    opened.addEventListener('notice', function (event) {
      var notice = JSON.parse(event.data);
      last = event.lastEventId || last;
      list.dataset.lastEventId = last;
      add('notice', notice.name + ' entered #' + notice.room);
    });
    opened.addEventListener('reload', function () {
      add('missed', 'Some notifications were missed.');
    });
  }

  window.addEventListener('offline', function () {
    stop();
    list.dataset.state = 'offline';
  });
  window.addEventListener('online', open);
  open();
}());
