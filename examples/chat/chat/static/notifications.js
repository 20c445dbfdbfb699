// The notifications sidebar: arrivals in every room, over server-sent
// events. EventSource reconnects by itself and sends Last-Event-ID, so a
// dropped stream resumes where it was; while the browser is offline the
// page closes it, and reopens it with ?last_event_id= the last one shown.
(function () {
  'use strict';

  var list = document.getElementById('notifications');
  if (!list || !window.EventSource) { return; }
  var url = list.dataset.streamUrl;
  var source = null;
  var last = null;
  var KEEP = 20;  // notices shown at most

  function add(className, text) {
    var li = document.createElement('li');
    li.className = className;
    li.textContent = text;
    list.appendChild(li);
    while (list.children.length > KEEP) { list.removeChild(list.firstChild); }
  }

  function open() {
    var target = url;
    if (last) { target += '?last_event_id=' + encodeURIComponent(last); }
    source = new EventSource(target);
    source.onopen = function () { list.dataset.state = 'live'; };
    source.onerror = function () { list.dataset.state = 'reconnecting'; };
    source.addEventListener('notice', function (event) {
      var notice = JSON.parse(event.data);
      last = event.lastEventId || last;
      add('notice', notice.name + ' entered #' + notice.room);
    });
    source.addEventListener('reload', function () {
      add('missed', 'Some notifications were missed.');
    });
  }

  window.addEventListener('offline', function () {
    if (source) { source.close(); }
    list.dataset.state = 'offline';
  });
  window.addEventListener('online', open);
  open();
}());
