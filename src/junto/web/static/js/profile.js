// Profile page: live preview of the chosen colour and its contrast on white, so people see
// before saving whether the server will accept it (WCAG AA: at least 4.5:1). The server checks
// again; this is only a convenience, and the form works without it.

const MIN_CONTRAST = 4.5;

function channel(value) {
  const c = value / 255;
  return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
}

/** WCAG 2.x contrast ratio of "#rrggbb" against white. */
export function contrastOnWhite(hex) {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  const luminance = 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  return 1.05 / (luminance + 0.05);
}

function setup() {
  const input = document.getElementById("colour");
  const preview = document.getElementById("colour-preview");
  const check = document.getElementById("colour-check");
  const nameInput = document.getElementById("display_name");
  if (!input || !preview || !check) return;
  const circle = preview.querySelector("circle");
  const name = preview.querySelector(".preview-name");

  const update = () => {
    const colour = input.value;
    if (!/^#[0-9a-fA-F]{6}$/.test(colour)) return;
    const ratio = contrastOnWhite(colour);
    const shown = Math.round(ratio * 100) / 100;
    const ok = shown >= MIN_CONTRAST;
    // CSSOM and SVG attributes, not style="": the page's CSP forbids inline styles. A colour
    // too light to read is shown on the swatch only, so the name itself stays readable.
    if (ok) preview.style.setProperty("--person", colour);
    else preview.style.removeProperty("--person");
    circle?.setAttribute("fill", colour);
    check.textContent = ok
      ? `Contrast ${shown.toFixed(2)}:1 on white: readable.`
      : `Contrast ${shown.toFixed(2)}:1 on white: too light, needs at least ${MIN_CONTRAST}:1.`;
    check.classList.toggle("contrast-bad", !ok);
    input.setAttribute("aria-invalid", ok ? "false" : "true");
  };
  const rename = () => {
    if (name && nameInput) name.textContent = nameInput.value.trim() || "Your name";
  };
  input.addEventListener("input", update);
  nameInput?.addEventListener("input", rename);
  update();
}

setup();
