// Live notes: every note saved, by anyone, arrives over the socket; the
// composer sends over it too while it is open, else posts the form.
(function () {
  'use strict';
  var list = document.getElementById('notes');
  var form = document.getElementById('composer');
  var input = document.getElementById('text');
  var status = document.getElementById('status');
  var socket = null;
  var delay = 250;

  function show(note) {
    var item = document.createElement('li');
    var via = document.createElement('span');
    item.textContent = note.text + ' ';
    via.className = 'via';
    via.textContent = note.author + ', by ' + note.via;
    item.appendChild(via);
    list.appendChild(item);
  }

  function connect() {
    socket = new WebSocket(list.dataset.socketUrl);
    socket.onmessage = function (event) {
      var message = JSON.parse(event.data);
      if (message.type === 'joined') {
        status.textContent = 'on, as ' + message.user;
        delay = 250;
      } else if (message.type === 'note') {
        show(message);
      } else if (message.type === 'error') {
        status.textContent = message.error;
      }
    };
    socket.onclose = function (event) {
      socket = null;
      status.textContent = 'off (' + event.code + '), reconnecting';
      setTimeout(connect, delay * (0.5 + Math.random()));
      delay = Math.min(delay * 2, 4000);
    };
  }

  form.addEventListener('submit', function (event) {
    if (socket === null || socket.readyState !== WebSocket.OPEN) {
      return; // the plain form post
    }
    event.preventDefault();
    socket.send(JSON.stringify({text: input.value}));
    input.value = '';
  });

  connect();
}());
