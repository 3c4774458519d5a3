// Shopper pages of Lookalike. Only presentation lives here: the photo (shrunk in the browser when big) and the
// filters go to POST /api/search/, and the page draws what the API answers (garment boxes, notice, cards,
// errors next to the control they are about). A searched photo is also kept by POST /photos/ so the search
// has a URL (/?photo=<id>&garment=1...) that a reload or a shared link restores. Text search without a photo
// is a plain form submit that the server renders.
(function () {
  "use strict";

  var LAST_SEARCH = "lookalike:last-search";
  var NARROW = window.matchMedia("(max-width: 860px)");

  function remember(url) {
    try {
      window.sessionStorage.setItem(LAST_SEARCH, url);
    } catch (e) {
      /* private mode: the breadcrumb keeps its plain link */
    }
  }

  // Product page: the breadcrumb leads back to the results the shopper came from, not to an empty page.
  var back = document.querySelector("[data-back-to-results]");
  if (back) {
    var last = null;
    try {
      last = window.sessionStorage.getItem(LAST_SEARCH);
    } catch (e) {
      last = null;
    }
    if (last) {
      back.href = last;
      back.textContent = "Back to results";
    }
  }

  var form = document.getElementById("search-form");
  if (!form) {
    return;
  }
  var apiUrl = form.dataset.apiUrl;
  var photosUrl = form.dataset.photosUrl;
  var csrfToken = form.dataset.csrfToken;
  var maxBytes = Number(form.dataset.maxBytes);
  var maxSize = form.dataset.maxSize; // "15 MB": core.photos.megabytes, the same words as every message
  var MAX_SIDE = 1600; // what the server shrinks to anyway (LOOKALIKE_MAX_IMAGE_SIDE)
  var FILTERS = form.dataset.filters.split(","); // the page view names them (catalog.vocabulary)
  var LABELS = { min_price: "min price", max_price: "max price", k: "number of results" };
  var $ = function (id) {
    return document.getElementById(id);
  };
  var fileInput = $("photo-input");
  var cameraInput = $("camera-input");
  var dropzone = $("dropzone");
  var preview = $("preview");
  var stage = $("preview-stage");
  var previewImage = $("preview-image");
  var previewCaption = $("preview-caption");
  var boxesLayer = $("garment-boxes");
  var regionBox = $("region-box");
  var clearButton = $("clear-photo");
  var searchButton = $("search-button");
  var resultsPanel = $("results-panel");
  var results = $("results");
  var summary = $("results-summary");
  var errorBox = $("search-error");
  var noticeBox = $("search-notice");
  var emptyState = $("empty-state");
  var moreResults = $("more-results");
  var moreButton = $("more-button");
  var filters = $("filters");
  var cardTemplate = $("card-template");
  var skeletonTemplate = $("skeleton-template");
  var quantilesNode = $("score-quantiles");
  var quantiles = quantilesNode ? JSON.parse(quantilesNode.textContent) || [] : [];
  var errorPlaces = { photo: $("photo-error"), price: $("price-error"), form: $("form-error") };

  var photo = null;
  var photoUrl = null;
  var photoId = null;
  var selection = null; // null (the API's default garment), {garment: n} or {box: [x0, y0, x1, y1]}
  var chosenGarment = null; // the garment the shown results are for
  var pending = null;
  var slowTimer = null;
  var generation = 0; // bumps on every new or removed photo, so late answers for an old one are dropped

  if (NARROW.matches && filters) {
    filters.open = false; // on a phone the results come right after the photo; filters open on demand
  }
  if (window.location.search) {
    remember(window.location.href);
  }

  function show(element, text) {
    element.textContent = text || "";
    element.hidden = !text;
  }

  function shopperWords(text) {
    Object.keys(LABELS).forEach(function (name) {
      text = text.replace(new RegExp("\\b" + name + "\\b", "g"), LABELS[name]);
    });
    return text;
  }

  function clearErrors() {
    Object.keys(errorPlaces).forEach(function (key) {
      show(errorPlaces[key], "");
    });
    show(errorBox, "");
  }

  // An error is shown beside what it is about (the photo, the prices, the search button) and scrolled to.
  function showError(message, place) {
    clearErrors();
    var node = errorPlaces[place] || errorPlaces.form;
    show(node, message);
    node.scrollIntoView({ block: "nearest" });
  }

  function matchScore(distance) {
    // Mirrors search.selectors.match_score: % of unrelated catalog pairs further apart than this distance.
    if (distance === null || distance === undefined || quantiles.length < 2) {
      return null;
    }
    if (distance <= quantiles[0]) {
      return 100;
    }
    var step = 100 / (quantiles.length - 1);
    for (var i = 1; i < quantiles.length; i++) {
      var low = quantiles[i - 1];
      var high = quantiles[i];
      if (distance <= high) {
        var fraction = high === low ? 0 : (distance - low) / (high - low);
        return Math.round(100 - (i - 1 + fraction) * step);
      }
    }
    return 0;
  }

  // Big photos are shrunk here to what the models use (1600 px, JPEG): a 17 MB phone photo becomes ~0.5 MB
  // and is never refused after a long upload. What the browser cannot decode goes as it is: the API says why.
  function prepare(file) {
    if (!window.createImageBitmap) {
      return Promise.resolve(file);
    }
    return window
      .createImageBitmap(file)
      .then(
        function (bitmap) {
          var side = Math.max(bitmap.width, bitmap.height);
          if (side <= MAX_SIDE && file.size <= maxBytes) {
            return file;
          }
          var scale = Math.min(1, MAX_SIDE / side);
          var canvas = document.createElement("canvas");
          canvas.width = Math.max(1, Math.round(bitmap.width * scale));
          canvas.height = Math.max(1, Math.round(bitmap.height * scale));
          var context = canvas.getContext("2d");
          context.fillStyle = "#fff"; // transparent PNGs: white, as the server flattens them
          context.fillRect(0, 0, canvas.width, canvas.height);
          context.drawImage(bitmap, 0, 0, canvas.width, canvas.height);
          return new Promise(function (resolve) {
            canvas.toBlob(
              function (blob) {
                var name = (file.name || "photo").replace(/\.[^.]*$/, "") + ".jpg";
                resolve(blob ? new File([blob], name, { type: "image/jpeg" }) : file);
              },
              "image/jpeg",
              0.9
            );
          });
        },
        function () {
          return file;
        }
      )
      .then(function (ready) {
        if (ready.size > maxBytes) {
          throw new Error(
            "This photo is " + (ready.size / 1048576).toFixed(1) + " MB; photos up to " + maxSize + " can be searched."
          );
        }
        return ready;
      });
  }

  function resetResults() {
    results.replaceChildren();
    show(noticeBox, "");
    summary.textContent = "";
    moreResults.hidden = true;
    emptyState.hidden = false;
  }

  function setPhoto(file, restore) {
    generation += 1;
    if (pending) {
      pending.abort();
    }
    if (photoUrl) {
      URL.revokeObjectURL(photoUrl);
    }
    photo = null;
    photoUrl = null;
    photoId = restore ? restore.id : null;
    selection = restore ? restore.selection : null;
    boxesLayer.replaceChildren();
    chosenGarment = null;
    regionBox.hidden = true;
    clearErrors();
    preview.hidden = !file;
    dropzone.classList.toggle("has-photo", Boolean(file));
    if (!file) {
      previewImage.removeAttribute("src");
      fileInput.value = "";
      cameraInput.value = "";
      resetResults();
      window.history.replaceState(null, "", window.location.pathname);
      return;
    }
    var mine = generation;
    previewCaption.textContent = "Preparing your photo…";
    setBusy(true);
    prepare(file).then(
      function (ready) {
        if (mine !== generation) {
          return;
        }
        photo = ready;
        photoUrl = URL.createObjectURL(ready);
        previewImage.hidden = false;
        previewImage.src = photoUrl;
        if (selection && selection.box) {
          placeRegion(selection.box); // a restored /?photo=...&box=... shows the region it searches
        }
        previewImage.alt = "Your photo: " + file.name;
        previewCaption.textContent = file.name;
        if (!photoId) {
          storePhoto(ready, mine);
        }
        search(selection);
      },
      function (error) {
        if (mine !== generation) {
          return;
        }
        setBusy(false);
        preview.hidden = true;
        resetResults();
        showError(error.message, "photo");
      }
    );
  }

  function storePhoto(file, mine) {
    var body = new FormData();
    body.append("image", file, file.name);
    fetch(photosUrl, { method: "POST", body: body, headers: { "X-CSRFToken": csrfToken }, credentials: "same-origin" })
      .then(function (response) {
        return response.ok ? response.json() : null;
      })
      .then(function (payload) {
        if (payload && payload.id && mine === generation) {
          photoId = payload.id;
          updateUrl();
        }
      })
      .catch(function () {
        /* the search still works; only its link is missing */
      });
  }

  function filterValues() {
    var values = {};
    FILTERS.forEach(function (name) {
      var value = form.elements[name].value.trim();
      if (value !== "") {
        values[name] = value;
      }
    });
    var words = form.elements.q.value.trim();
    if (words !== "") {
      values.q = words;
    }
    return values;
  }

  function updateUrl() {
    if (!photoId) {
      return;
    }
    var params = new URLSearchParams({ photo: photoId });
    if (selection && selection.garment !== undefined) {
      params.set("garment", String(selection.garment));
    } else if (selection && selection.box) {
      params.set("box", selection.box.join(","));
    }
    var values = filterValues();
    Object.keys(values).forEach(function (name) {
      params.set(name, values[name]);
    });
    window.history.replaceState(null, "", "?" + params.toString());
    remember(window.location.href);
  }

  function apiError(payload, status) {
    var error = payload && payload.error;
    if (!error || !error.message) {
      return { message: "The search didn’t work this time (error " + status + "). Please try again.", place: "form" };
    }
    var details = error.details && typeof error.details === "object" ? error.details : {};
    var fields = Object.keys(details);
    var parts = fields.map(function (field) {
      var text = [].concat(details[field]).join(" ");
      return field === "non_field_errors" ? text : (LABELS[field] || field.replace(/_/g, " ")) + ": " + text;
    });
    var place = "form";
    if (status === 413 || status === 415 || /image|photo/.test(error.code || "") || fields.indexOf("image") >= 0) {
      place = "photo";
    } else if (fields.indexOf("min_price") >= 0 || fields.indexOf("max_price") >= 0) {
      place = "price";
    }
    var message = shopperWords([error.message].concat(parts).join(" "));
    return { message: message.charAt(0).toUpperCase() + message.slice(1), place: place };
  }

  function requestBody(chosen) {
    var body = new FormData();
    body.append("image", photo, photo.name);
    var values = filterValues();
    Object.keys(values).forEach(function (name) {
      body.append(name, values[name]);
    });
    if (chosen && chosen.garment !== undefined) {
      body.append("garment", String(chosen.garment));
    } else if (chosen && chosen.box) {
      body.append("box", chosen.box.join(","));
    }
    return body;
  }

  function skeletons() {
    var count = Math.min(Number(form.elements.k.value) || 12, 12);
    var nodes = [];
    for (var i = 0; i < count; i++) {
      nodes.push(skeletonTemplate.content.firstElementChild.cloneNode(true));
    }
    return nodes;
  }

  function setBusy(busy) {
    results.setAttribute("aria-busy", busy ? "true" : "false");
    searchButton.disabled = busy;
    searchButton.textContent = busy ? "Searching…" : "Search";
    window.clearTimeout(slowTimer);
    if (!busy) {
      return;
    }
    summary.textContent = "Searching your photo…";
    emptyState.hidden = true;
    moreResults.hidden = true;
    if (!results.querySelector(".card:not(.card--skeleton)")) {
      results.replaceChildren.apply(results, skeletons());
    }
    // The first search after a start loads the models: say so rather than look stuck.
    slowTimer = window.setTimeout(function () {
      summary.textContent = "Still searching: the first search loads the models and takes a few seconds…";
    }, Number(form.dataset.slowMs || 2500));
  }

  function search(chosen) {
    if (!photo) {
      return;
    }
    if (pending) {
      pending.abort();
    }
    var controller = new AbortController();
    pending = controller;
    selection = chosen;
    clearErrors();
    setBusy(true);
    fetch(apiUrl, {
      method: "POST",
      body: requestBody(chosen),
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
              var failure = apiError(payload, response.status);
              var error = new Error(failure.message);
              error.place = failure.place;
              throw error;
            }
            return payload;
          });
      })
      .then(function (payload) {
        if (pending === controller) {
          render(payload, chosen);
        }
      })
      .catch(function (error) {
        if (error.name === "AbortError" || pending !== controller) {
          return;
        }
        results.querySelectorAll(".card--skeleton").forEach(function (node) {
          node.remove();
        });
        summary.textContent = "";
        if (error.place === "photo") {
          boxesLayer.replaceChildren(); // the photo itself was refused: its old results do not apply
          resetResults();
          showError(error.message, "photo");
        } else if (error.place) {
          showError(error.message, error.place);
        } else {
          showError(
            navigator.onLine === false
              ? "You seem to be offline. Check your connection, then press Search again."
              : "We couldn’t reach the shop’s search. Check your connection, then press Search again.",
            "form"
          );
        }
      })
      .finally(function () {
        if (pending === controller) {
          pending = null;
          setBusy(false);
        }
      });
  }

  function drawBoxes(queryInfo) {
    var garments = queryInfo.garments || [];
    var size = queryInfo.image_size || [0, 0];
    var focused = document.activeElement && document.activeElement.classList.contains("garment-box");
    var focusIndex = focused ? document.activeElement.dataset.index : null;
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
      button.setAttribute("aria-pressed", garment.index === queryInfo.chosen ? "true" : "false");
      button.setAttribute(
        "aria-label",
        "Search for the " + garment.label + " (garment " + (garment.index + 1) + " of " + garments.length + ")"
      );
      var label = document.createElement("span");
      label.className = "garment-box__label";
      label.textContent = garment.label;
      button.appendChild(label);
      button.addEventListener("click", function () {
        if (justDrew) {
          return;
        }
        if (garment.index === chosenGarment && regionBox.hidden) {
          return;
        }
        regionBox.hidden = true;
        button.classList.add("is-loading");
        search({ garment: garment.index });
      });
      boxesLayer.appendChild(button);
    });
    if (focusIndex !== null) {
      // The boxes were rebuilt: keep keyboard focus on the garment the shopper chose.
      var again = boxesLayer.querySelector('.garment-box[data-index="' + focusIndex + '"]');
      if (again) {
        again.focus();
      }
    }
  }

  function card(result) {
    var product = result.product;
    var node = cardTemplate.content.firstElementChild.cloneNode(true);
    node.dataset.productId = String(product.id);
    var image = node.querySelector(".card__image");
    image.src = result.image_url || result.cutout_url || "";
    image.alt = product.name;
    var score = matchScore(result.distance);
    node.querySelector(".card__similarity").hidden = score === null;
    node.querySelector(".card__percent").textContent = "Match " + score + "/100";
    node.querySelector(".meter__bar").style.width = (score || 0) + "%";
    var link = node.querySelector(".card__link");
    link.href = product.url;
    link.textContent = product.name;
    var label = result.garment && result.garment.label;
    node.querySelector(".card__matched").textContent =
      result.distance === null ? "Matched by its description" : "Matched: " + (label === "selection" ? "your selection" : label);
    node.querySelector(".card__id").textContent = "ID " + (product.external_id || product.id);
    var sku = node.querySelector(".card__sku");
    sku.textContent = product.sku ? "SKU " + product.sku : "";
    sku.hidden = !product.sku;
    node.querySelector(".card__price").textContent =
      product.price !== null && product.price !== undefined ? product.price + " " + product.currency : "Price not listed";
    node.querySelector(".card__category").textContent = product.category || "";
    node.querySelector(".card__category").hidden = !product.category;
    node.querySelector(".card__shop").textContent = product.shop || "";
    var more = node.querySelector(".card__more");
    more.href = form.getAttribute("action") + "?like=" + product.id;
    more.querySelector(".visually-hidden").textContent = ": " + product.name;
    return node;
  }

  function render(payload, chosen) {
    var queryInfo = payload.query || {};
    var items = payload.results || [];
    var region = chosen && chosen.box;
    chosenGarment = region ? null : queryInfo.chosen;
    if (!region) {
      drawBoxes(queryInfo);
    } else {
      boxesLayer.querySelectorAll(".garment-box").forEach(function (button) {
        button.setAttribute("aria-pressed", "false");
      });
    }
    var garments = queryInfo.garments || [];
    var picked = region
      ? null
      : garments.filter(function (garment) {
          return garment.index === queryInfo.chosen;
        })[0];
    if (picked && garments.length > 1 && !queryInfo.whole_image) {
      previewCaption.textContent = "Searching the " + picked.label + ". Choose another garment to search for it.";
    } else if (region) {
      previewCaption.textContent = "Searching the region you drew.";
    }
    show(noticeBox, queryInfo.notice || (items.length ? "" : "No products matched. Try removing some filters."));
    results.replaceChildren.apply(results, items.map(card));
    emptyState.hidden = true;
    var k = Number(form.elements.k.value);
    moreResults.hidden = !(items.length >= k && k < 100);
    var count = items.length + " similar product" + (items.length === 1 ? "" : "s");
    count = region ? count + " for the region you drew" : count;
    count = picked && garments.length > 1 ? count + " for the " + picked.label : count;
    var refine = queryInfo.refine;
    if (refine) {
      var words = [refine.text, refine.not_text ? "not " + refine.not_text : ""].filter(Boolean).join(", ");
      count += ", refined by “" + words + "”";
    }
    summary.textContent = count;
    updateUrl();
    if (NARROW.matches) {
      resultsPanel.scrollIntoView({ block: "start" }); // on a phone the results start far below the photo
    }
  }

  // The region box in percentages of the photo's own pixels: it follows the preview at any displayed size.
  function placeRegion(box) {
    var width = previewImage.naturalWidth;
    var height = previewImage.naturalHeight;
    if (!width || !height) {
      previewImage.addEventListener(
        "load",
        function () {
          placeRegion(box);
        },
        { once: true }
      );
      return;
    }
    regionBox.style.left = (100 * box[0]) / width + "%";
    regionBox.style.top = (100 * box[1]) / height + "%";
    regionBox.style.width = (100 * (box[2] - box[0])) / width + "%";
    regionBox.style.height = (100 * (box[3] - box[1])) / height + "%";
    regionBox.hidden = false;
  }

  // Draw a region: press on the photo and drag (mouse, pen or finger: pointer events); a press without a drag
  // is a plain click on a garment box.
  var drag = null;
  var justDrew = false;
  stage.addEventListener("pointerdown", function (event) {
    if (!photo || event.button > 0) {
      return;
    }
    var rect = stage.getBoundingClientRect();
    event.preventDefault(); // no text selection or native drag while drawing
    drag = { x: event.clientX - rect.left, y: event.clientY - rect.top, rect: rect, moved: false };
  });
  window.addEventListener("pointermove", function (event) {
    if (!drag) {
      return;
    }
    var x = Math.min(Math.max(event.clientX - drag.rect.left, 0), drag.rect.width);
    var y = Math.min(Math.max(event.clientY - drag.rect.top, 0), drag.rect.height);
    if (!drag.moved && Math.abs(x - drag.x) + Math.abs(y - drag.y) < 10) {
      return;
    }
    drag.moved = true;
    drag.x1 = x;
    drag.y1 = y;
    regionBox.hidden = false;
    regionBox.style.left = Math.min(drag.x, x) + "px";
    regionBox.style.top = Math.min(drag.y, y) + "px";
    regionBox.style.width = Math.abs(x - drag.x) + "px";
    regionBox.style.height = Math.abs(y - drag.y) + "px";
    event.preventDefault();
  });
  function endDrag() {
    var done = drag;
    drag = null;
    if (!done || !done.moved) {
      return;
    }
    justDrew = true;
    window.setTimeout(function () {
      justDrew = false;
    }, 0);
    var scaleX = previewImage.naturalWidth / done.rect.width;
    var scaleY = previewImage.naturalHeight / done.rect.height;
    var box = [
      Math.round(Math.min(done.x, done.x1) * scaleX),
      Math.round(Math.min(done.y, done.y1) * scaleY),
      Math.round(Math.max(done.x, done.x1) * scaleX),
      Math.round(Math.max(done.y, done.y1) * scaleY),
    ];
    if (box[2] - box[0] < 8 || box[3] - box[1] < 8) {
      regionBox.hidden = true;
      return;
    }
    placeRegion(box);
    search({ box: box });
  }
  window.addEventListener("pointerup", endDrag);
  window.addEventListener("pointercancel", function () {
    drag = null;
    regionBox.hidden = true;
  });

  function chosenFile(input) {
    if (input.files && input.files.length) {
      setPhoto(input.files[0]);
    }
  }
  fileInput.addEventListener("change", function () {
    chosenFile(fileInput);
  });
  cameraInput.addEventListener("change", function () {
    chosenFile(cameraInput);
  });

  // Search by image link: the *browser* fetches it (the shop's server never fetches shopper-given URLs, so it
  // cannot be steered into its own network); a site that forbids that (CORS) gets the copy-and-paste advice.
  var urlInput = $("image-url");
  function searchLink(text) {
    var link = null;
    try {
      link = new URL(text.trim(), window.location.href);
    } catch (e) {
      link = null;
    }
    if (!link || !/^https?:$/.test(link.protocol)) {
      showError("That is not a web link to a photo (it should start with https://).", "photo");
      return;
    }
    clearErrors();
    previewCaption.textContent = "Fetching the photo…";
    fetch(link.href, { mode: "cors", credentials: "omit", referrerPolicy: "no-referrer" })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("That link answered with error " + response.status + "; check it and try again.");
        }
        return response.blob();
      })
      .then(function (blob) {
        var type = (blob.type || "").split(";")[0];
        if (type && !/^image\//.test(type) && type !== "application/octet-stream") {
          throw new Error("That link is not a photo (it is " + type + ").");
        }
        var name = link.pathname.split("/").filter(Boolean).pop() || "linked photo";
        try {
          name = decodeURIComponent(name);
        } catch (e) {
          /* keep it encoded */
        }
        setPhoto(new File([blob], name, { type: /^image\//.test(type) ? type : "image/jpeg" }));
      })
      .catch(function (error) {
        showError(
          error instanceof TypeError
            ? "That photo couldn’t be loaded here: its site may not let other sites use it. Open the photo there, copy it and paste it here."
            : error.message,
          "photo"
        );
      });
  }
  $("image-url-button").addEventListener("click", function () {
    searchLink(urlInput.value);
  });
  urlInput.addEventListener("keydown", function (event) {
    if (event.key === "Enter") {
      event.preventDefault(); // not the form's text search
      searchLink(urlInput.value);
    }
  });

  // Paste a photo (a screenshot, an image copied from another site) anywhere on the page; a pasted image link
  // outside a text field is searched as a link.
  document.addEventListener("paste", function (event) {
    var data = event.clipboardData;
    var files = data ? Array.prototype.slice.call(data.files || []) : [];
    var image = files.filter(function (file) {
      return /^image\//.test(file.type);
    })[0];
    if (image) {
      event.preventDefault();
      setPhoto(image);
      return;
    }
    var text = data ? (data.getData("text/plain") || "").trim() : "";
    var typing = event.target && /^(INPUT|TEXTAREA)$/.test(event.target.tagName);
    if (!typing && /^https?:\/\/\S+$/.test(text)) {
      event.preventDefault();
      urlInput.value = text;
      searchLink(text);
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
    fileInput.focus();
  });

  // Filters apply as soon as they change: a photo is searched again, words are submitted again.
  FILTERS.forEach(function (name) {
    form.elements[name].addEventListener("change", function () {
      if (photo) {
        search(selection);
      } else if (form.elements.q.value.trim()) {
        form.requestSubmit();
      }
    });
  });

  moreButton.addEventListener("click", function (event) {
    if (!photo) {
      return; // a text search: the server renders the longer list
    }
    event.preventDefault();
    var select = form.elements.k;
    var next = String(Math.min(Number(select.value) * 2, 100));
    if (!select.querySelector('option[value="' + next + '"]')) {
      select.appendChild(new Option(next, next));
    }
    select.value = next;
    search(selection);
  });

  form.addEventListener("submit", function (event) {
    if (photo) {
      event.preventDefault();
      search(selection);
    } else if (!form.elements.q.value.trim()) {
      event.preventDefault();
      showError("Choose a photo, or type a description, to search.", "form");
    }
    // Otherwise: a text search, submitted to the server as a normal GET.
  });

  // /?photo=<id>: a reload or a shared link of a photo search brings the photo, garment and filters back.
  var params = new URLSearchParams(window.location.search);
  var sharedId = params.get("photo");
  if (sharedId && /^[0-9a-f]{32}$/.test(sharedId)) {
    var restore = { id: sharedId, selection: null };
    if (params.get("garment") !== null) {
      restore.selection = { garment: Number(params.get("garment")) };
    } else if (params.get("box")) {
      restore.selection = { box: params.get("box").split(",").map(Number) };
    }
    fetch(form.getAttribute("action") + "photos/" + sharedId + "/", { credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("gone");
        }
        return response.blob();
      })
      .then(function (blob) {
        setPhoto(new File([blob], "shared photo", { type: blob.type || "image/jpeg" }), restore);
      })
      .catch(function () {
        summary.textContent = "";
        emptyState.hidden = false;
        showError("That photo is no longer available; choose it again to search.", "photo");
      });
  }
})();
