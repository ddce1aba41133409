// The template editor's live preview: after a pause in typing, the drafts are posted to the preview
// endpoint (with the form's CSRF token) and each language's preview is redrawn from its JSON answer.
(function () {
  'use strict';
  const form = document.getElementById('template-editor');
  if (!form) return;
  let timer = null;
  let asked = 0;

  function show(locale, shown) {
    const box = document.getElementById('preview-' + locale);
    if (!box) return;
    box.replaceChildren();
    if (!shown) return;
    if (shown.error) {
      const p = document.createElement('p');
      p.className = 'error';
      p.textContent = shown.error;
      box.append(p);
      return;
    }
    const subject = document.createElement('p');
    const strong = document.createElement('strong');
    strong.className = 'preview-subject';
    strong.textContent = shown.subject;
    subject.append(strong);
    const text = document.createElement('pre');
    text.className = 'preview-text';
    text.textContent = shown.text;
    box.append(subject, text);
    if (shown.html) {
      // Already cleaned by the server (nh3); parsed inertly, never run.
      const html = document.createElement('div');
      html.className = 'preview-html';
      const parsed = new DOMParser().parseFromString(shown.html, 'text/html');
      html.append(...parsed.body.childNodes);
      box.append(html);
    }
  }

  async function refresh() {
    const mine = ++asked;
    const response = await fetch(form.dataset.preview, { method: 'POST', body: new FormData(form), credentials: 'same-origin' });
    if (mine !== asked || !response.ok) return;
    const previews = await response.json();
    for (const section of form.querySelectorAll('[data-locale]')) {
      show(section.dataset.locale, previews[section.dataset.locale]);
    }
  }

  form.addEventListener('input', function () {
    clearTimeout(timer);
    timer = setTimeout(refresh, 400);
  });
})();
