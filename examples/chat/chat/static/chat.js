// The room page: one WebSocket, reconnecting with backoff when it drops.
// No build step. The socket URL comes from the page (request.consumer_url),
// so nothing here knows the host.
(function () {
  'use strict';

  var root = document.getElementById('chat');
  if (!root) { return; }
  var url = root.dataset.socketUrl;
  if (window.location.protocol === 'https:' && url.indexOf('ws:') === 0) {
    url = 'wss:' + url.slice(3);
  }
  var messages = document.getElementById('messages');
  var online = document.getElementById('online');
  var status = document.getElementById('status');
  var composer = document.getElementById('composer');
  var input = document.getElementById('text');

  var socket = null;
  var attempts = 0;
  // The position of the last chat message shown: a reconnect asks for
  // what came after it (the room's history), so nothing is missed.
  var lastPosition = null;
  var timer = null;
  var MIN_DELAY = 250;   // ms before the first retry
  var MAX_DELAY = 4000;  // ms, the cap of the exponential backoff

  function setStatus(state, text) {
    status.dataset.state = state;
    root.dataset.state = state;
    status.textContent = text;
  }

  function time(ms) {
    var d = new Date(ms);
    return d.toLocaleTimeString([], {hour: '2-digit', minute: '2-digit'});
  }

  function addLine(className, parts) {
    var li = document.createElement('li');
    li.className = className;
    parts.forEach(function (part) {
      var span = document.createElement('span');
      span.className = part[0];
      span.textContent = part[1];  // never innerHTML: names and text are user input
      li.appendChild(span);
    });
    var atBottom = messages.scrollHeight - messages.scrollTop - messages.clientHeight < 40;
    messages.appendChild(li);
    if (atBottom) { messages.scrollTop = messages.scrollHeight; }
    return li;
  }

  function showMessage(msg) {
    var li = addLine('message', [
      ['time', time(msg.at)],
      ['name', msg.name],
      ['text', msg.text]
    ]);
    li.dataset.via = msg.via;
    if (msg.name === root.dataset.name) { li.classList.add('mine'); }
    if (msg.via === 'form') {
      var tag = document.createElement('span');
      tag.className = 'via';
      tag.textContent = 'form';
      tag.title = 'posted with the plain HTML form';
      li.appendChild(tag);
    }
  }

  function showOnline(names) {
    online.textContent = '';
    names.forEach(function (name) {
      var li = document.createElement('li');
      li.textContent = name;
      if (name === root.dataset.name) { li.className = 'me'; }
      online.appendChild(li);
    });
  }

  function handle(event) {
    var msg;
    try { msg = JSON.parse(event.data); } catch (e) { return; }
    if (msg.type === 'message') {
      showMessage(msg);
      if (msg.position) { lastPosition = msg.position; }
    }
    else if (msg.type === 'presence') { showOnline(msg.online); }
    else if (msg.type === 'welcome' && !msg.caught_up && lastPosition) {
      addLine('notice', [['text', 'Some messages sent while you were away are no longer kept.']]);
    }
  }

  function connect() {
    timer = null;
    setStatus('connecting', attempts ? 'reconnecting…' : 'connecting…');
    var since = lastPosition ? '?since=' + encodeURIComponent(lastPosition) : '';
    socket = new WebSocket(url + since);
    socket.onopen = function () {
      if (attempts) { addLine('notice', [['text', 'Reconnected.']]); }
      attempts = 0;
      setStatus('online', 'online');
    };
    socket.onmessage = handle;
    socket.onclose = function (event) {
      socket = null;
      if (event.code === 1008 || event.code === 1003 || event.code === 1007) {
        setStatus('offline', 'refused (' + event.code + ')');
        return;  // retrying would be refused again
      }
      if (!attempts) { addLine('notice', [['text', 'Connection lost; reconnecting…']]); }
      retry();
    };
  }

  function retry() {
    // Exponential backoff with jitter, so a restarted server is not hit by
    // every page at the same instant.
    var delay = Math.min(MAX_DELAY, MIN_DELAY * Math.pow(2, attempts));
    delay = delay / 2 + Math.random() * delay / 2;
    attempts += 1;
    setStatus('offline', 'offline, retrying in ' + (delay / 1000).toFixed(1) + ' s');
    timer = window.setTimeout(connect, delay);
  }

  composer.addEventListener('submit', function (event) {
    var text = input.value.trim();
    if (socket && socket.readyState === WebSocket.OPEN && text) {
      event.preventDefault();
      socket.send(JSON.stringify({text: text}));
      input.value = '';
      input.focus();
    }
    // otherwise the browser posts the form: the view broadcasts it
  });

  // Come back at once when the tab or the network returns; a socket the
  // network dropped may take long to notice, so it is closed at once.
  window.addEventListener('online', function () {
    if (timer !== null) { window.clearTimeout(timer); connect(); }
    else if (socket && socket.readyState === WebSocket.CONNECTING) {
      // an attempt made while offline may hang: start afresh
      socket.onclose = null;
      socket.close();
      connect();
    }
  });
  window.addEventListener('offline', function () {
    if (socket) { socket.close(); }
  });

  connect();
}());
