// The version and target pickers in the bar over rustdoc pages. A static file, so
// that pages can forbid inline scripts.
document.addEventListener("DOMContentLoaded", () => {
    for (const picker of document.querySelectorAll(".docbuild-picker")) {
        picker.addEventListener("change", () => { window.location.href = picker.value; });
    }
});
