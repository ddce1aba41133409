// The card previewer (/dev/addon): plays the Apps Script shim in a browser. It posts the event
// objects the shim posts to the same /addon/v1/* routes with an ID token for the chosen agent,
// keeps the card stack the way Gmail does (pushCard, updateCard, popCard) and asks the server to
// render each card as HTML. Demo mode only; see server/addon_api/preview.py.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const tokens = new Map(); // agent email -> {token, until}
  let stack = [];

  async function tokenFor(agent) {
    const kept = tokens.get(agent);
    if (kept && kept.until > Date.now()) return kept.token;
    const response = await fetch('/dev/addon/token', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ agent }),
    });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error ? body.error.message : response.statusText);
    tokens.set(agent, { token: body.token, until: Date.now() + (body.expires_in - 60) * 1000 });
    return body.token;
  }

  function commonEventObject() {
    return {
      hostApp: 'GMAIL',
      platform: 'WEB',
      userLocale: $('locale').value,
      timeZone: { id: $('zone').value.trim() || 'UTC' },
    };
  }

  function selectedThread() {
    const option = $('thread').selectedOptions[0];
    if (!option) return {};
    return { threadId: option.value, messageId: option.dataset.message, rfc822: option.dataset.rfc822 };
  }

  // What the shim sends for a trigger: Gmail's event plus the open message's Message-ID.
  function triggerEvent(kind) {
    const event = { commonEventObject: commonEventObject(), postdesk: {} };
    if (kind === 'message' || kind === 'compose') {
      const thread = selectedThread();
      event.gmail = { threadId: thread.threadId, messageId: thread.messageId };
      if (thread.rfc822) event.postdesk.rfc822MessageId = thread.rfc822;
    }
    return event;
  }

  // The card's inputs as Gmail puts them in commonEventObject.formInputs.
  function formInputs() {
    const inputs = {};
    for (const element of $('card').querySelectorAll('[data-input]')) {
      const name = element.dataset.input;
      if (element.dataset.kind === 'datetime') {
        if (!element.value) continue;
        const [day, clock] = element.value.split('T');
        const [year, month, date] = day.split('-').map(Number);
        const [hours, minutes] = clock.split(':').map(Number);
        const offset = Number(element.dataset.offsetMinutes || 0);
        const ms = Date.UTC(year, month - 1, date, hours, minutes) - offset * 60000;
        inputs[name] = { dateTimeInput: { msSinceEpoch: String(ms), hasDate: true, hasTime: true } };
      } else if (element.value !== '') {
        inputs[name] = { stringInputs: { value: [element.value] } };
      }
    }
    return inputs;
  }

  async function call(route, event) {
    $('error').textContent = '';
    $('toast').textContent = '';
    const agent = $('agent').value;
    const response = await fetch(route, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        Authorization: 'Bearer ' + (await tokenFor(agent)),
      },
      body: JSON.stringify(event),
    });
    const answer = await response.json();
    $('json').textContent = JSON.stringify(answer, null, 2);
    if (response.status >= 400 && !(answer.action || answer.renderActions)) {
      throw new Error(response.status + ': ' + (answer.error ? answer.error.message : response.statusText));
    }
    await show(answer);
  }

  async function trigger(kind) {
    stack = [];
    $('draft').textContent = '';
    $('link').textContent = '';
    await call('/addon/v1/' + kind, triggerEvent(kind));
  }

  async function click(action) {
    const event = triggerEvent($('card').dataset.trigger || 'message');
    const parameters = {};
    for (const item of action.parameters || []) parameters[item.key] = item.value;
    event.commonEventObject.parameters = parameters;
    event.commonEventObject.formInputs = formInputs();
    // The shim's function posts to /addon/v1/action; an HTTP-runtime card names that URL itself.
    const route = /^https?:/.test(action.function) ? new URL(action.function).pathname : '/addon/v1/action';
    await call(route, event);
  }

  async function show(answer) {
    const action = answer.action || (answer.renderActions && answer.renderActions.action) || {};
    for (const navigation of action.navigations || []) {
      if (navigation.pushCard) stack.push(navigation.pushCard);
      else if (navigation.updateCard) stack[Math.max(stack.length - 1, 0)] = navigation.updateCard;
      else if (navigation.popCard) stack.pop();
      else if (navigation.popToRoot) stack = stack.slice(0, 1);
    }
    if (action.notification) $('toast').textContent = action.notification.text;
    if (action.link || action.openLink) showLink((action.link || action.openLink).url);
    const draft = answer.renderActions && answer.renderActions.hostAppAction;
    if (draft) {
      const body = draft.gmailAction.updateDraftActionMarkup.updateBody;
      $('draft').textContent =
        $('draft').dataset.title + ':\n' + body.insertContents.map((c) => c.content).join('\n');
    }
    await renderTop();
  }

  function showLink(url) {
    const box = $('link');
    box.textContent = box.dataset.title + ': ';
    const anchor = document.createElement('a');
    anchor.textContent = url;
    if (/^https?:\/\//.test(url)) anchor.href = url;
    anchor.target = '_blank';
    anchor.rel = 'noopener noreferrer';
    box.appendChild(anchor);
  }

  async function renderTop() {
    $('back').hidden = stack.length < 2;
    const card = stack[stack.length - 1];
    if (!card) {
      $('card').innerHTML = '';
      return;
    }
    const response = await fetch('/dev/addon/render', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ card }),
    });
    // Rendered by the server: autoescaped, card text cleaned down to the card tags (nh3).
    $('card').innerHTML = await response.text();
  }

  function guarded(work) {
    return () => work().catch((error) => {
      $('error').textContent = String(error.message || error);
    });
  }

  $('card').addEventListener('click', (event) => {
    const target = event.target.closest('[data-action], [data-link]');
    if (!target) return;
    if (target.dataset.link) {
      showLink(JSON.parse(target.dataset.link));
      return;
    }
    guarded(() => click(JSON.parse(target.dataset.action)))();
  });
  $('open-message').addEventListener('click', guarded(async () => {
    $('card').dataset.trigger = 'message';
    await trigger('message');
  }));
  $('open-homepage').addEventListener('click', guarded(async () => {
    $('card').dataset.trigger = 'homepage';
    await trigger('homepage');
  }));
  $('open-compose').addEventListener('click', guarded(async () => {
    $('card').dataset.trigger = 'compose';
    await trigger('compose');
  }));
  $('back').addEventListener('click', guarded(async () => {
    stack.pop();
    await renderTop();
  }));
  function followAgent() {
    const option = $('agent').selectedOptions[0];
    if (!option) return;
    $('locale').value = option.dataset.locale && option.dataset.locale.startsWith('ru') ? 'ru' : 'en';
    $('zone').value = option.dataset.zone || 'UTC';
  }
  $('agent').addEventListener('change', followAgent);
  followAgent();
})();
