// Portcullis portal: the only script, loaded from /static (CSP: script-src 'self'). Everything works
// without it; it only adds "select all" to lists with checkboxes.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("input[data-select-all]").forEach(function (box) {
    box.addEventListener("change", function () {
      var form = box.form;
      if (!form) { return; }
      form.querySelectorAll("input[type=checkbox][name=id]").forEach(function (c) { c.checked = box.checked; });
    });
  });
});
