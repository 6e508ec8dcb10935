// The chat page's script (amelia ui, /chat): send a message, show the answer as it streams
// (a fetch whose body is JSON lines), stop it. Plain JS, no build. Text from the server and
// the model is written with textContent only: it is never markup. Every POST carries the
// page's token (X-Amelia-Token).
(function () {
  'use strict';
  var form = document.getElementById('chat-form');
  if (!form || !window.fetch || !window.TextDecoder) return;
  var TOKEN = (document.querySelector('meta[name="amelia-token"]') || {}).content || '';
  var log = document.getElementById('chat-log');
  var box = document.getElementById('chat-message');
  var sendBtn = document.getElementById('chat-send');
  var stopBtn = document.getElementById('chat-stop');
  var statusEl = document.getElementById('chat-status');
  var problemEl = document.getElementById('chat-problem');
  var modelSel = document.getElementById('chat-model');
  var sourceSel = document.getElementById('chat-source');
  var whereEl = document.getElementById('chat-where');
  var session = form.getAttribute('data-session') || '';
  var pipeline = form.getAttribute('data-pipeline') || '';
  var going = null;  // the answer being written: {session, controller, stopping}

  function say(text) { statusEl.textContent = text; }

  function showProblem(text) {
    problemEl.textContent = text || '';
    problemEl.hidden = !text;
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function buttons() {
    sendBtn.disabled = !!going;
    stopBtn.disabled = !going;
  }

  // A picked model's problem (its key not set) is said before anything is sent.
  if (modelSel) modelSel.addEventListener('change', function () {
    var opt = modelSel.options[modelSel.selectedIndex];
    showProblem(opt ? opt.getAttribute('data-problem') : '');
  });

  // Enter (or Ctrl+Enter) sends; Shift+Enter is a new line; not while composing (IME).
  box.addEventListener('keydown', function (e) {
    if (e.key !== 'Enter' || e.isComposing || e.shiftKey || e.altKey) return;
    e.preventDefault();
    if (form.requestSubmit) form.requestSubmit(); else sendBtn.click();
  });

  function refreshSessions() {
    var target = document.getElementById('chat-sessions');
    fetch('/parts/chat/sessions?session=' + encodeURIComponent(session), {credentials: 'same-origin'})
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null) target.innerHTML = html; })  // the server's own, escaped
      .catch(function () {});
  }

  function post(url, body, signal) {
    return fetch(url, {
      method: 'POST', credentials: 'same-origin', signal: signal,
      headers: {'Content-Type': 'application/json', 'X-Amelia-Token': TOKEN},
      body: JSON.stringify(body)
    });
  }

  function refusal(r) {
    return r.json().catch(function () { return {}; }).then(function (j) {
      return (j.error || ('Refused: HTTP ' + r.status)) + (j.hint ? '\n(hint: ' + j.hint + ')' : '');
    });
  }

  // The new turn's markup (as the server renders an earlier one).
  function newTurn(question) {
    var li = el('li', 'turn');
    var you = el('div', 'msg user');
    you.appendChild(el('h3', 'who', 'You'));
    you.appendChild(el('div', 'text', question));
    var them = el('div', 'msg assistant');
    var who = el('h3', 'who', modelSel ? modelSel.value : 'model');
    var text = el('div', 'text');
    text.setAttribute('aria-live', 'polite');   // read out once whole (aria-busy while it streams)
    text.setAttribute('aria-busy', 'true');
    them.appendChild(who);
    them.appendChild(text);
    li.appendChild(you);
    li.appendChild(them);
    log.appendChild(li);
    return {li: li, box: them, text: text};
  }

  function finish(turn) {
    turn.text.setAttribute('aria-busy', 'false');
  }

  function onLine(turn, d) {
    switch (d.type) {
      case 'session':
        going.session = d.id;
        break;
      case 'text':
        turn.text.appendChild(document.createTextNode(d.text));
        break;
      case 'note':
        turn.box.insertBefore(el('p', 'note', d.text), turn.text);
        break;
      case 'done':
        turn.text.textContent = d.answer;  // the whole answer, as kept (a retried stream showed twice)
        if (d.citations && d.citations.length) {
          var list = el('ul', 'citations');
          list.setAttribute('aria-label', 'Citations');
          d.citations.forEach(function (c) { list.appendChild(el('li', '', c)); });
          turn.box.appendChild(list);
        }
        turn.box.appendChild(el('p', 'usage', d.usage));
        finish(turn);
        if (session !== d.session) {
          session = d.session;
          form.setAttribute('data-session', session);
          history.replaceState(null, '', '/chat?session=' + encodeURIComponent(session));
          if (whereEl) {
            whereEl.textContent = 'Session ';
            whereEl.appendChild(el('code', '', session));
          }
        }
        say('Answered: ' + d.usage + '.');
        refreshSessions();
        return true;
      case 'stopped':
        turn.box.classList.add('stopped');
        turn.box.appendChild(el('p', 'note', '(stopped: this turn is not kept)'));
        finish(turn);
        say('Stopped: the turn is not kept.');
        return true;
      case 'error':
        var p = el('p', 'problem', d.error + (d.hint ? '\n(hint: ' + d.hint + ')' : ''));
        p.setAttribute('role', 'alert');
        turn.box.appendChild(p);
        finish(turn);
        say('The model did not answer: the turn is not kept.');
        return true;
    }
    return false;
  }

  // The answer's lines as they come: one JSON object a line (blank lines keep it alive).
  function read(turn, response) {
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    var buffer = '';
    var ended = false;
    function pump() {
      return reader.read().then(function (chunk) {
        if (chunk.done) return;
        buffer += decoder.decode(chunk.value, {stream: true});
        var lines = buffer.split('\n');
        buffer = lines.pop();
        for (var i = 0; i < lines.length && !ended; i++) {
          if (!lines[i].trim()) continue;
          ended = onLine(turn, JSON.parse(lines[i]));
        }
        if (!ended) return pump();
      });
    }
    return pump().then(function () {
      if (!ended) onLine(turn, {type: 'error', error: 'the answer was cut off', hint: 'ask again'});
    });
  }

  form.addEventListener('submit', function (e) {
    e.preventDefault();
    if (going) return;
    var question = box.value.trim();
    if (!question) { say('Type a message first.'); box.focus(); return; }
    showProblem('');
    var controller = window.AbortController ? new AbortController() : null;
    going = {session: session, controller: controller, stopping: false};
    buttons();
    say('Answering…');
    var turn = newTurn(question);
    box.value = '';
    post('/api/chat', {message: question, session: session, pipeline: pipeline,
                       model: modelSel ? modelSel.value : '', source: sourceSel ? sourceSel.value : ''},
         controller && controller.signal)
      .then(function (r) {
        if (!r.ok) {
          return refusal(r).then(function (text) {
            turn.li.remove();            // nothing was asked: the message goes back in the box
            box.value = question;
            showProblem(text);
            say('Not sent.');
          });
        }
        return read(turn, r);
      })
      .catch(function () {
        if (going && going.stopping) onLine(turn, {type: 'stopped'});
        else onLine(turn, {type: 'error', error: 'the server did not answer', hint: 'is amelia ui still running?'});
      })
      .then(function () {
        going = null;
        buttons();
        box.focus();
      });
  });

  // Stop: the server ends the answer (nothing is kept); if it cannot be asked, leave.
  stopBtn.addEventListener('click', function () {
    if (!going) return;
    var g = going;
    g.stopping = true;
    stopBtn.disabled = true;
    say('Stopping…');
    post('/api/chat/stop', {session: g.session}).then(function (r) {
      if (!r.ok && g.controller) g.controller.abort();
    }).catch(function () { if (g.controller) g.controller.abort(); });
  });

  buttons();
})();
