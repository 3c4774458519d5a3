// Photo search on the Lookalike search page.
// Only presentation lives here: it sends the photo and filters to POST /api/search/ and draws what the
// API answers (garment boxes, notice, result cards, error message). Words typed beside a photo go with it as
// `q` and refine it ("in red, not denim"). Text search without a photo is a plain form submit that the
// server renders (keyword search in every profile).
(function () {
  "use strict";

  var form = document.getElementById("search-form");
  if (!form) {
    return;
  }
  var apiUrl = form.dataset.apiUrl;
  var csrfToken = form.dataset.csrfToken;
  var fileInput = document.getElementById("photo-input");
  var dropzone = document.getElementById("dropzone");
  var preview = document.getElementById("preview");
  var previewImage = document.getElementById("preview-image");
  var previewCaption = document.getElementById("preview-caption");
  var boxesLayer = document.getElementById("garment-boxes");
  var clearButton = document.getElementById("clear-photo");
  var searchButton = document.getElementById("search-button");
  var results = document.getElementById("results");
  var summary = document.getElementById("results-summary");
  var errorBox = document.getElementById("search-error");
  var noticeBox = document.getElementById("search-notice");
  var emptyState = document.getElementById("empty-state");
  var cardTemplate = document.getElementById("card-template");
  var FILTERS = form.dataset.filters.split(","); // the page view names them (catalog.vocabulary)

  var photo = null;
  var photoUrl = null;
  var chosenGarment = null;
  var pending = null;

  function show(element, text) {
    element.textContent = text || "";
    element.hidden = !text;
  }

  function setPhoto(file) {
    if (photoUrl) {
      URL.revokeObjectURL(photoUrl);
    }
    photo = file;
    photoUrl = file ? URL.createObjectURL(file) : null;
    chosenGarment = null;
    boxesLayer.replaceChildren();
    preview.hidden = !file;
    dropzone.classList.toggle("has-photo", Boolean(file));
    if (file) {
      previewImage.hidden = false;
      previewImage.src = photoUrl;
      previewImage.alt = "Your photo: " + file.name;
      previewCaption.textContent = file.name;
      search(null);
    } else {
      previewImage.removeAttribute("src");
      fileInput.value = "";
    }
  }

  function apiErrorMessage(payload, status) {
    var error = payload && payload.error;
    if (!error || !error.message) {
      return "The search failed (HTTP " + status + "). Please try again.";
    }
    var details = error.details && typeof error.details === "object" ? error.details : {};
    var parts = Object.keys(details).map(function (field) {
      var text = [].concat(details[field]).join(" ");
      return field === "non_field_errors" ? text : field.replace(/_/g, " ") + ": " + text;
    });
    return [error.message].concat(parts).join(" ");
  }

  function requestBody(garmentIndex) {
    var body = new FormData();
    body.append("image", photo, photo.name);
    FILTERS.forEach(function (name) {
      var value = form.elements[name].value.trim();
      if (value !== "") {
        body.append(name, value);
      }
    });
    if (garmentIndex !== null) {
      body.append("garment", String(garmentIndex));
    }
    var words = form.elements.q.value.trim();
    if (words !== "") {
      body.append("q", words);
    }
    return body;
  }

  function setBusy(busy) {
    results.setAttribute("aria-busy", busy ? "true" : "false");
    searchButton.disabled = busy;
    searchButton.textContent = busy ? "Searching…" : "Search";
    if (busy) {
      summary.textContent = "Searching…";
    }
  }

  function search(garmentIndex) {
    if (pending) {
      pending.abort();
    }
    var controller = new AbortController();
    pending = controller;
    show(errorBox, "");
    setBusy(true);
    fetch(apiUrl, {
      method: "POST",
      body: requestBody(garmentIndex),
      headers: { "X-CSRFToken": csrfToken, Accept: "application/json" },
      credentials: "same-origin",
      signal: controller.signal,
    })
      .then(function (response) {
        return response
          .json()
          .catch(function () {
            return null;
          })
          .then(function (payload) {
            if (!response.ok || !payload) {
              throw new Error(apiErrorMessage(payload, response.status));
            }
            return payload;
          });
      })
      .then(function (payload) {
        if (pending === controller) {
          render(payload);
        }
      })
      .catch(function (error) {
        if (error.name === "AbortError") {
          return;
        }
        renderError(error.message || "The search failed. Check your connection and try again.");
      })
      .finally(function () {
        if (pending === controller) {
          pending = null;
          setBusy(false);
        }
      });
  }

  function renderError(message) {
    boxesLayer.replaceChildren();
    results.replaceChildren();
    show(noticeBox, "");
    emptyState.hidden = true;
    summary.textContent = "";
    show(errorBox, message);
  }

  function drawBoxes(queryInfo) {
    var garments = queryInfo.garments || [];
    var size = queryInfo.image_size || [0, 0];
    boxesLayer.replaceChildren();
    if (!size[0] || !size[1] || queryInfo.whole_image) {
      return;
    }
    garments.forEach(function (garment) {
      var box = garment.box;
      var button = document.createElement("button");
      button.type = "button";
      button.className = "garment-box";
      button.dataset.index = String(garment.index);
      // Percentages of the photo the boxes refer to: they follow the preview at any displayed size.
      button.style.left = (100 * box[0]) / size[0] + "%";
      button.style.top = (100 * box[1]) / size[1] + "%";
      button.style.width = (100 * (box[2] - box[0])) / size[0] + "%";
      button.style.height = (100 * (box[3] - box[1])) / size[1] + "%";
      var chosen = garment.index === queryInfo.chosen;
      button.setAttribute("aria-pressed", chosen ? "true" : "false");
      button.setAttribute(
        "aria-label",
        "Search for the " + garment.label + " (garment " + (garment.index + 1) + " of " + garments.length + ")"
      );
      var label = document.createElement("span");
      label.className = "garment-box__label";
      label.textContent = garment.label;
      button.appendChild(label);
      button.addEventListener("click", function () {
        if (garment.index === chosenGarment) {
          return;
        }
        button.classList.add("is-loading");
        search(garment.index);
      });
      boxesLayer.appendChild(button);
    });
  }

  function card(result) {
    var product = result.product;
    var node = cardTemplate.content.firstElementChild.cloneNode(true);
    node.dataset.productId = String(product.id);
    var image = node.querySelector(".card__image");
    image.src = result.image_url || result.cutout_url || "";
    image.alt = product.name;
    var percent = Number(result.similarity).toFixed(1);
    node.querySelector(".card__percent").textContent = percent + "% similar";
    node.querySelector(".meter__bar").style.width = percent + "%";
    var link = node.querySelector(".card__link");
    link.href = product.url;
    link.textContent = product.name;
    node.querySelector(".card__id").textContent = "ID " + (product.external_id || product.id);
    var sku = node.querySelector(".card__sku");
    sku.textContent = product.sku ? "SKU " + product.sku : "";
    sku.hidden = !product.sku;
    node.querySelector(".card__price").textContent =
      product.price !== null && product.price !== undefined ? product.price + " " + product.currency : "Price not listed";
    node.querySelector(".card__category").textContent = product.category || "";
    node.querySelector(".card__category").hidden = !product.category;
    node.querySelector(".card__shop").textContent = product.shop || "";
    return node;
  }

  function render(payload) {
    var queryInfo = payload.query || {};
    var items = payload.results || [];
    chosenGarment = queryInfo.chosen === undefined ? null : queryInfo.chosen;
    drawBoxes(queryInfo);
    var garments = queryInfo.garments || [];
    var chosen = garments.filter(function (garment) {
      return garment.index === chosenGarment;
    })[0];
    if (chosen && garments.length > 1 && !queryInfo.whole_image) {
      previewCaption.textContent = "Searching the " + chosen.label + ". Click another garment to search for it.";
    }
    show(noticeBox, queryInfo.notice || (items.length ? "" : "No products matched. Try removing some filters."));
    results.replaceChildren.apply(results, items.map(card));
    emptyState.hidden = true;
    var count = items.length + " similar product" + (items.length === 1 ? "" : "s");
    count = chosen && garments.length > 1 ? count + " for the " + chosen.label : count;
    var refine = queryInfo.refine;
    if (refine) {
      var words = [refine.text, refine.not_text ? "not " + refine.not_text : ""].filter(Boolean).join(", ");
      count += ", refined by “" + words + "”";
    }
    summary.textContent = count;
  }

  fileInput.addEventListener("change", function () {
    if (fileInput.files && fileInput.files.length) {
      setPhoto(fileInput.files[0]);
    }
  });

  previewImage.addEventListener("error", function () {
    // Not something the browser can show (e.g. a renamed text file): the API's answer explains why.
    if (photo) {
      previewImage.hidden = true;
    }
  });

  ["dragenter", "dragover"].forEach(function (type) {
    dropzone.addEventListener(type, function (event) {
      event.preventDefault();
      dropzone.classList.add("is-dragging");
    });
  });
  ["dragleave", "dragend"].forEach(function (type) {
    dropzone.addEventListener(type, function () {
      dropzone.classList.remove("is-dragging");
    });
  });
  dropzone.addEventListener("drop", function (event) {
    event.preventDefault();
    dropzone.classList.remove("is-dragging");
    var files = event.dataTransfer && event.dataTransfer.files;
    if (files && files.length) {
      setPhoto(files[0]);
    }
  });
  // A photo dropped next to the zone must not make the browser leave the page to open it.
  ["dragover", "drop"].forEach(function (type) {
    window.addEventListener(type, function (event) {
      if (!dropzone.contains(event.target)) {
        event.preventDefault();
      }
    });
  });

  clearButton.addEventListener("click", function () {
    setPhoto(null);
    show(errorBox, "");
    show(noticeBox, "");
  });

  form.addEventListener("submit", function (event) {
    if (photo) {
      event.preventDefault();
      search(chosenGarment);
    } else if (!form.elements.q.value.trim()) {
      event.preventDefault();
      renderError("Choose a photo, or type a description, to search.");
      emptyState.hidden = false;
    }
    // Otherwise: a text search, submitted to the server as a normal GET.
  });
})();
