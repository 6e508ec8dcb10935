// The ui's page script (amelia ui): live step states from /events, start and cancel.
// Plain JS, no build. The server puts `var AMELIA = {classes, marks};` before it.
// Every state-changing request carries the page's token (X-Amelia-Token); data from the
// server is written with textContent, never as markup (except the server's own fragments).
(function () {
  'use strict';
  var live = document.getElementById('live');
  if (!live || !window.EventSource) return;
  var TOKEN = (document.querySelector('meta[name="amelia-token"]') || {}).content || '';
  var kind = live.getAttribute('data-page');          // "dashboard" | "run"
  var pageRun = live.getAttribute('data-run') || '';    // the run page's run id
  var pagePipeline = live.getAttribute('data-pipeline') || '';  // the dashboard's pipeline
  var statusEl = document.getElementById('run-status');
  var startBtn = document.getElementById('run-start');
  var cancelBtn = document.getElementById('run-cancel');
  var current = {run_id: '', file: '', status: 'idle', steps: {}};

  function say(text) { if (statusEl) statusEl.textContent = text; }

  function swapClass(el, state) {
    Array.prototype.slice.call(el.classList).forEach(function (c) {
      if (c.indexOf('state-') === 0) el.classList.remove(c);
    });
    el.classList.add(AMELIA.classes[state] || 'state-pending');
  }

  function word(state) { return ((AMELIA.marks[state] || '') + ' ' + state).trim(); }

  // One step's state everywhere it is shown: the DAG node, the table row, the details.
  function setState(sid, state) {
    var sel = '[data-step="' + (window.CSS && CSS.escape ? CSS.escape(sid) : sid) + '"]';
    document.querySelectorAll(sel).forEach(function (el) {
      swapClass(el, state);
      el.setAttribute('data-state', state);
      if (el.matches('g.node')) {
        el.setAttribute('aria-label', sid + ': ' + state);
        var t = el.querySelector('text.state');
        if (t) {
          var rest = t.textContent.split(' · ').slice(1);
          t.textContent = [word(state)].concat(rest).join(' · ');
        }
        var title = el.querySelector('title');
        if (title) title.textContent = title.textContent.replace(/: [^:]*$/, ': ' + state);
      }
      el.querySelectorAll('.badge').forEach(function (b) {
        swapClass(b, state);
        b.setAttribute('data-state', state);
        b.textContent = word(state);
      });
    });
  }

  // Whether this page shows the live run's steps.
  function mine() {
    if (kind === 'run') return !!current.run_id && current.run_id === pageRun;
    return !!current.file && current.file === pagePipeline;
  }

  function going() { return current.status === 'starting' || current.status === 'running'; }

  function buttons() {
    if (startBtn) startBtn.disabled = going();
    if (cancelBtn) {
      cancelBtn.disabled = !going();
      if (kind === 'run') cancelBtn.hidden = !(going() && mine());
    }
  }

  function describe() {
    var id = current.run_id ? 'run ' + current.run_id : 'a run';
    if (current.status === 'starting') return 'Starting ' + current.file + '…';
    if (current.status === 'running') return 'Running ' + id + ' of ' + current.file + '.';
    if (current.status === 'idle') return 'No run going.';
    return 'Last ' + id + ' of ' + current.file + ': ' + current.status +
      (current.error ? ' — ' + current.error : '') + '.';
  }

  function showRunLink() {
    var link = document.getElementById('run-link');
    if (!link || !current.run_id) return;
    link.href = '/runs/' + encodeURIComponent(current.run_id);
    link.textContent = 'Open run ' + current.run_id;
    link.hidden = false;
  }

  function applyAll() {
    if (mine()) Object.keys(current.steps || {}).forEach(function (sid) { setState(sid, current.steps[sid]); });
    say(describe());
    showRunLink();
    buttons();
  }

  function refresh(url, target) {
    var el = document.getElementById(target);
    if (!el) return;
    fetch(url, {credentials: 'same-origin'}).then(function (r) {
      return r.ok ? r.text() : null;
    }).then(function (html) { if (html !== null) el.innerHTML = html; }).catch(function () {});
  }

  function ended(d) {
    current.status = d.status;
    current.error = d.error || '';
    if (d.run_id) current.run_id = d.run_id;
    applyAll();
    if (kind === 'dashboard') refresh('/parts/runs', 'runs');
    else if (mine()) refresh('/parts/run/' + encodeURIComponent(pageRun), 'run-body');
  }

  function onEvent(d) {
    switch (d.type) {
      case 'ui_run_starting':
        current = {run_id: '', file: d.file, status: 'starting', steps: {}};
        applyAll();
        break;
      case 'run_started':
        current.run_id = d.run_id;
        current.status = 'running';
        current.steps = {};
        (d.steps || []).forEach(function (s) { current.steps[s[0]] = s[1] === 'blocked' ? 'blocked' : 'pending'; });
        applyAll();
        break;
      case 'ui_run_ended':
        ended(d);
        break;
      default:
        if (d.step && AMELIA.events[d.type]) {
          current.steps[d.step] = AMELIA.events[d.type];
          if (mine()) {
            setState(d.step, current.steps[d.step]);
            say(describe() + ' Step ' + d.step + ': ' + current.steps[d.step] + '.');
          }
        }
    }
  }

  // On (re)connect: the current state first, then events (none is missed for long).
  function resync() {
    fetch('/api/current', {credentials: 'same-origin'}).then(function (r) { return r.json(); })
      .then(function (state) { current = state; applyAll(); }).catch(function () {});
  }

  var source = new EventSource('/events');
  source.addEventListener('open', resync);
  source.addEventListener('message', function (m) {
    try { onEvent(JSON.parse(m.data)); } catch (e) { /* a line we do not know */ }
  });
  source.addEventListener('error', function () { say('Connection to amelia ui lost; retrying…'); });
  window.addEventListener('pagehide', function () { source.close(); });

  function post(url, body) {
    return fetch(url, {
      method: 'POST', credentials: 'same-origin',
      headers: {'Content-Type': 'application/json', 'X-Amelia-Token': TOKEN},
      body: JSON.stringify(body || {})
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (j) {
        if (!r.ok) say(j.error || ('Refused: HTTP ' + r.status));
        return r.ok;
      });
    }).catch(function () { say('The server did not answer.'); return false; });
  }

  // The dashboard runs the pipeline it shows: choosing another shows that one first.
  var select = document.getElementById('run-file');
  if (select) select.addEventListener('change', function () {
    location.href = '/?pipeline=' + encodeURIComponent(select.value);
  });
  if (startBtn) startBtn.addEventListener('click', function () {
    startBtn.disabled = true;
    post('/api/runs', {file: pagePipeline}).then(function (ok) { if (!ok) buttons(); });
  });
  if (cancelBtn) cancelBtn.addEventListener('click', function () {
    cancelBtn.disabled = true;
    say('Cancelling…');
    post('/api/runs/current/cancel');
  });

  // The dashboard's health panel: doctor's checks (no secret: a key is "set" or not).
  var health = document.getElementById('health-body');
  if (health) {
    fetch('/api/health', {credentials: 'same-origin'}).then(function (r) { return r.json(); }).then(function (checks) {
      var table = document.createElement('table');
      table.className = 'health';
      var head = table.createTHead().insertRow();
      ['Check', 'Status', 'Detail'].forEach(function (h) {
        var th = document.createElement('th'); th.scope = 'col'; th.textContent = h; head.appendChild(th);
      });
      var body = table.createTBody();
      checks.forEach(function (c) {
        var row = body.insertRow();
        var th = document.createElement('th'); th.scope = 'row'; th.textContent = c.name; row.appendChild(th);
        var st = row.insertCell(); st.textContent = c.status; st.className = 'health-' + c.status;
        row.insertCell().textContent = c.detail;
      });
      var wrap = document.createElement('div');
      wrap.className = 'table-wrap';
      wrap.appendChild(table);
      // what needs a look first; the checks that passed folded below
      var ok = checks.filter(function (c) { return c.status === 'ok'; });
      var okTable = table.cloneNode(true);
      Array.prototype.slice.call(body.rows).forEach(function (row, i) {
        if (checks[i].status === 'ok') row.remove();
      });
      Array.prototype.slice.call(okTable.tBodies[0].rows).forEach(function (row, i) {
        if (checks[i].status !== 'ok') row.remove();
      });
      var fold = document.createElement('details');
      fold.className = 'checks';
      var sum = document.createElement('summary');
      sum.textContent = ok.length + ' of ' + checks.length + ' checks ok';
      fold.appendChild(sum);
      var okWrap = document.createElement('div');
      okWrap.className = 'table-wrap';
      okWrap.appendChild(okTable);
      fold.appendChild(okWrap);
      var box = document.createElement('div');
      if (ok.length < checks.length) box.appendChild(wrap);
      box.appendChild(fold);
      health.replaceWith(box);
    }).catch(function () { health.textContent = 'The checks could not be read.'; });
  }
})();
