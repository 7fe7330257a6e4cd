// The default look, in one stylesheet added once per page. Every selector is wrapped in
// :where(), whose specificity is zero: any rule of the app's own (a class, the `style` or
// `className` props) wins over it without !important.

const CSS = `
:where(.dfc-upload) {
  display: block; box-sizing: border-box; padding: 16px; border: 2px dashed #9aa4b1;
  border-radius: 8px; background: #fafbfc; text-align: center; cursor: pointer;
}
:where(.dfc-upload--active) { border-color: #2563eb; background: #eef4ff; }
:where(.dfc-upload--disabled) { opacity: 0.55; cursor: not-allowed; }
:where(.dfc-upload__input) { display: none; }
:where(.dfc-upload__button) {
  font: inherit; padding: 2px 10px; border: 1px solid #2563eb; border-radius: 4px;
  background: #fff; color: #2563eb; cursor: pointer;
}
:where(.dfc-upload__notice) { margin-top: 8px; color: #b91c1c; }
:where(.dfc-upload__files) { list-style: none; margin: 12px 0 0; padding: 0; text-align: left; cursor: default; }
:where(.dfc-upload__file) { margin: 8px 0; }
:where(.dfc-upload__row) { display: flex; gap: 8px; align-items: baseline; }
:where(.dfc-upload__name) { flex: 1; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
:where(.dfc-upload__status) { color: #4b5563; font-size: 0.9em; }
:where(.dfc-upload__file--refused .dfc-upload__status, .dfc-upload__file--paused .dfc-upload__status) {
  color: #b91c1c;
}
:where(.dfc-upload__cancel, .dfc-upload__retry) {
  font: inherit; font-size: 0.85em; padding: 0 8px; border: 1px solid #9aa4b1; border-radius: 4px;
  background: #fff; cursor: pointer;
}
:where(.dfc-upload__bar) { height: 8px; margin-top: 4px; border-radius: 4px; background: #e5e7eb; overflow: hidden; }
:where(.dfc-upload__fill) { height: 100%; width: 0; background: #2563eb; transition: width 0.1s linear; }
:where(.dfc-upload__file--done .dfc-upload__fill) { background: #16a34a; }
:where(.dfc-upload__file--refused .dfc-upload__fill, .dfc-upload__file--cancelled .dfc-upload__fill) {
  background: #9ca3af;
}
`;

export function ensureStyles() {
    if (document.getElementById("dfc-upload-styles")) return;
    const style = document.createElement("style");
    style.id = "dfc-upload-styles";
    style.textContent = CSS;
    // First in <head>: stylesheets of the app, later in the page, win ties too.
    document.head.insertBefore(style, document.head.firstChild);
}
