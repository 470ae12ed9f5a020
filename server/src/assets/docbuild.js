// Pickers in the bar over rustdoc pages, and the crate filter. A static file, so
// that pages can forbid inline scripts.
document.addEventListener("DOMContentLoaded", () => {
    for (const picker of document.querySelectorAll(".docbuild-picker")) {
        picker.addEventListener("change", () => { window.location.href = picker.value; });
    }
    const filter = document.getElementById("crate-filter");
    if (filter) {
        filter.addEventListener("input", () => {
            const wanted = filter.value.toLowerCase();
            for (const item of document.querySelectorAll("#crate-list li")) {
                item.hidden = !item.dataset.name.toLowerCase().includes(wanted);
            }
        });
    }
});
