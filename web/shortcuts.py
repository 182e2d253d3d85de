"""Browser-side helpers placed in the page head: keyboard shortcuts for judging and the
tracking of text selected in a debater's source (for Insert quote). They only read the
page and click its own buttons; nothing here touches stored data."""

HEAD = """
<script>
(() => {
  if (window.__debateShortcuts) return;
  window.__debateShortcuts = true;
  const $ = (sel) => document.querySelector(sel);
  const visible = (el) => el && el.offsetParent !== null;
  function setSlider(value) {
    const range = $('#prob-a input[type=range]');
    if (!visible(range)) return;
    const v = Math.max(1, Math.min(99, value));
    range.value = String(v);
    range.dispatchEvent(new Event('input', {bubbles: true}));
    range.dispatchEvent(new Event('change', {bubbles: true}));
  }
  function sliderValue() {
    const range = $('#prob-a input[type=range]');
    return range ? Number(range.value) : 50;
  }
  function click(sel) {
    const b = $(sel);
    if (visible(b) && !b.disabled) b.click();
  }
  document.addEventListener('keydown', (e) => {
    if (e.ctrlKey && e.key === 'Enter') {
      if (visible($('#judge-submit'))) { e.preventDefault(); click('#judge-submit'); }
      return;
    }
    const t = e.target;
    const typing = t && (t.tagName === 'TEXTAREA' || t.isContentEditable ||
      (t.tagName === 'INPUT' && t.type !== 'range'));
    if (typing || e.altKey || e.ctrlKey || e.metaKey) return;
    if (!visible($('#judge-submit'))) return;
    if (e.key >= '1' && e.key <= '9') { setSlider(10 * Number(e.key)); e.preventDefault(); }
    else if (e.key === '[') { setSlider(sliderValue() - 5); e.preventDefault(); }
    else if (e.key === ']') { setSlider(sliderValue() + 5); e.preventDefault(); }
    else if (e.key === 'n' || e.key === 'N') { click('#judge-next'); e.preventDefault(); }
  });
  document.addEventListener('selectionchange', () => {
    const sel = window.getSelection();
    if (!sel || sel.rangeCount === 0 || sel.isCollapsed) return;
    const src = document.getElementById('source-text');
    if (src && src.contains(sel.anchorNode) && src.contains(sel.focusNode)) {
      window.__debateSourceSelection = sel.toString();
    }
  });
})();
</script>
"""
