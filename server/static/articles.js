// The article editor's live preview: after a pause in typing, the Markdown is posted to the preview
// endpoint (with the form's CSRF token) and the preview redrawn from the server's cleaned HTML.
(function () {
  'use strict';
  const form = document.getElementById('article-editor');
  const box = document.getElementById('article-preview');
  if (!form || !box) return;
  let timer = null;
  let asked = 0;

  async function refresh() {
    const mine = ++asked;
    const response = await fetch(form.dataset.preview, { method: 'POST', body: new FormData(form), credentials: 'same-origin' });
    if (mine !== asked || !response.ok) return;
    const shown = await response.json();
    // Already cleaned by the server (nh3); parsed inertly, never run.
    const parsed = new DOMParser().parseFromString(shown.html, 'text/html');
    box.replaceChildren(...parsed.body.childNodes);
  }

  form.addEventListener('input', function () {
    clearTimeout(timer);
    timer = setTimeout(refresh, 400);
  });
})();
