// mimi playground: a Discord-like channel over the playground's JSON API (no build step).
"use strict";

const state = { world: null, guild: null, user: null, locale: "en-US", shown: "", modal: null };
const $ = (id) => document.getElementById(id);
const MESSAGE = "\u0000message"; // the composer's "write a message" choice

async function api(path, body) {
  const response = await fetch(path, body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function who() {
  return { guild: state.guild, user: state.user, locale: state.locale };
}

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;",
    '"': "&quot;", "'": "&#39;" })[c]);
}

function markdown(text) {
  let html = escapeHtml(text);
  html = html.replace(/`([^`]+)`/g, "<code>$1</code>");
  html = html.replace(/\*\*([^*]+)\*\*/g, "<strong>$1</strong>");
  html = html.replace(/\[([^\]]+)\]\((https?:[^)\s]+)\)/g, '<a href="$2">$1</a>');
  html = html.replace(/&lt;@!?(\d+)&gt;/g, (_, id) => "@" + nameOf(id));
  return html.replace(/\\([\\_*~`|>#-])/g, "$1");
}

function nameOf(id) {
  if (state.world && id === state.world.bot.id) return state.world.bot.name;
  const member = state.world && state.world.members.find((m) => String(m.id) === id);
  return member ? member.name : id;
}

function localName(item) {
  const lang = state.locale === "ja" ? "ja" : null;
  return (lang && item.name_localizations && item.name_localizations[lang]) || item.name;
}

// --- the channel -----------------------------------------------------------------------------

function renderEmbed(embed, attachments) {
  const box = document.createElement("div");
  box.className = "embed";
  if (embed.color !== undefined) box.style.borderLeftColor = "#" + embed.color.toString(16).padStart(6, "0");
  let html = "";
  if (embed.title) html += `<div class="title">${markdown(embed.title)}</div>`;
  if (embed.description) html += `<div class="description content">${markdown(embed.description)}</div>`;
  if (embed.fields && embed.fields.length) {
    html += '<div class="fields">' + embed.fields.map((f) => `<div class="field${f.inline ? "" : " wide"}">`
      + `<div class="fname">${markdown(f.name)}</div><div class="content">${markdown(f.value)}</div></div>`).join("") + "</div>";
  }
  if (embed.image && embed.image.url) {
    const name = embed.image.url.replace("attachment://", "");
    const file = attachments.find((a) => a.filename === name);
    if (file) {
      html += `<img src="${file.url}" alt="${escapeHtml(file.description || name)}" data-file="${escapeHtml(name)}">`;
      file.inEmbed = true;
    }
  }
  if (embed.footer && embed.footer.text) html += `<div class="footer">${markdown(embed.footer.text)}</div>`;
  box.innerHTML = html;
  return box;
}

function renderComponents(message) {
  const box = document.createElement("div");
  box.className = "components";
  for (const row of message.components) {
    for (const c of row.components || []) {
      if (c.type === 2) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "s" + (c.style || 2);
        button.textContent = (c.emoji && c.emoji.name ? c.emoji.name + " " : "") + (c.label || "");
        button.disabled = !!c.disabled || !c.custom_id;
        button.dataset.customId = c.custom_id || "";
        button.onclick = () => act("/api/press", { ...who(), message: message.id, custom_id: c.custom_id });
        box.append(button);
      } else if (c.type === 3) {
        const select = document.createElement("select");
        select.dataset.customId = c.custom_id;
        select.innerHTML = `<option value="">${escapeHtml(c.placeholder || "…")}</option>`
          + c.options.map((o) => `<option value="${escapeHtml(o.value)}">${escapeHtml(o.label)}</option>`).join("");
        select.onchange = () => select.value && act("/api/press",
          { ...who(), message: message.id, custom_id: c.custom_id, values: [select.value] });
        box.append(select);
      }
    }
  }
  return box;
}

function renderMessage(message) {
  const item = document.createElement("li");
  item.className = "message" + (message.bot ? " bot" : "");
  item.dataset.id = message.id;
  let head = "";
  if (message.used) {
    const what = message.used.menu ? message.used.command : "/" + message.used.command;
    head += `<div class="used">${escapeHtml(message.used.by)} used <strong>${escapeHtml(what)}</strong></div>`;
  }
  const initial = message.bot ? "耳" : (message.author || "?")[0];
  head += `<span class="avatar">${escapeHtml(initial)}</span>`
    + `<span class="name">${escapeHtml(message.author || "")}</span>`
    + (message.bot ? '<span class="app">APP</span>' : "");
  item.innerHTML = head;
  if (!message.bot && message.attachments.some((a) => /^audio\/|ogg|webm/.test(a.content_type))) {
    const menus = document.createElement("span");
    menus.className = "menus";
    for (const menu of state.world.commands.filter((c) => c.type === 3)) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = "Apps → " + localName(menu);
      button.onclick = () => act("/api/menu", { ...who(), message: message.id, name: menu.name });
      menus.append(button);
    }
    item.append(menus);
  }
  const body = document.createElement("div");
  if (message.loading) body.innerHTML = '<span class="thinking">mimi is thinking…</span>';
  else if (message.content) body.innerHTML = `<div class="content">${markdown(message.content)}</div>`;
  item.append(body);
  const attachments = message.attachments.map((a) => ({ ...a }));
  for (const embed of message.embeds) item.append(renderEmbed(embed, attachments));
  for (const a of attachments.filter((a) => !a.inEmbed)) {
    const box = document.createElement("div");
    box.className = "attachment";
    if (a.content_type.startsWith("image/")) box.innerHTML = `<img src="${a.url}" alt="${escapeHtml(a.description || a.filename)}">`;
    else if (/^audio\//.test(a.content_type)) box.innerHTML = `${escapeHtml(a.filename)}<br><audio controls src="${a.url}"></audio>`;
    else box.innerHTML = `<a href="${a.url}">${escapeHtml(a.filename)}</a>`;
    item.append(box);
  }
  if (message.components.length) item.append(renderComponents(message));
  if (message.edited && !message.loading) item.insertAdjacentHTML("beforeend", '<span class="edited">(edited)</span>');
  if (message.ephemeral) item.insertAdjacentHTML("beforeend", '<div class="ephemeral">👁 Only you can see this</div>');
  return item;
}

async function refresh() {
  if (state.guild === null) return;
  try {
    const data = await api(`/api/channel?guild=${state.guild}&user=${state.user}`);
    const text = JSON.stringify(data);
    if (text !== state.shown) {
      state.shown = text;
      const list = $("messages");
      const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
      list.replaceChildren(...data.messages.map(renderMessage));
      if (atBottom) list.scrollTop = list.scrollHeight;
      showModal(data.modal);
    }
  } catch (err) {
    $("status").textContent = "The playground stopped answering: " + err.message;
  }
}

function showModal(modal) {
  const dialog = $("modal");
  if (!modal || (state.modal && state.modal.interaction === modal.interaction)) return;
  state.modal = modal;
  $("modal-title").textContent = modal.title;
  const inputs = modal.components.flatMap((row) => row.components || []);
  $("modal-fields").replaceChildren(...inputs.map((input) => {
    const label = document.createElement("label");
    label.textContent = input.label;
    const field = document.createElement("input");
    Object.assign(field, { type: "text", name: input.custom_id, placeholder: input.placeholder || "",
      required: input.required !== false, value: input.value || "" });
    if (input.max_length) field.maxLength = input.max_length;
    label.append(field);
    return label;
  }));
  dialog.showModal();
}

$("modal-form").onsubmit = async (event) => {
  event.preventDefault();
  const values = Object.fromEntries([...$("modal-fields").querySelectorAll("input")].map((i) => [i.name, i.value]));
  $("modal").close();
  await act("/api/submit", { ...who(), interaction: state.modal.interaction, values });
};
$("modal-cancel").onclick = () => $("modal").close();

async function act(path, body) {
  $("status").textContent = "";
  try {
    await api(path, body);
  } catch (err) {
    $("status").textContent = err.message;
  }
  setTimeout(refresh, 150);
}

// --- the composer ------------------------------------------------------------------------------

function slashCommands() {
  return state.world.commands.filter((c) => (c.type || 1) === 1)
    .filter((c, i, all) => all.findIndex((d) => d.name === c.name) === i)
    .sort((a, b) => a.name.localeCompare(b.name));
}

function renderCommands() {
  const select = $("command");
  const chosen = select.value;
  select.innerHTML = `<option value="${MESSAGE}">💬 message</option>` + slashCommands()
    .map((c) => `<option value="${escapeHtml(c.name)}">/${escapeHtml(localName(c))}</option>`).join("");
  select.value = chosen || "teach";
  renderOptions();
}

function currentCommand() {
  return slashCommands().find((c) => c.name === $("command").value);
}

function currentOptions() {
  const command = currentCommand();
  if (!command) return [];
  const subs = (command.options || []).filter((o) => o.type === 1 || o.type === 2);
  const sub = $("subcommand");
  sub.hidden = !subs.length;
  if (!subs.length) return command.options || [];
  const flat = subs.flatMap((o) => o.type === 2 ? o.options.map((s) => ({ ...s, path: o.name + " " + s.name })) : [{ ...o, path: o.name }]);
  if (!flat.some((s) => s.path === sub.value)) {
    sub.innerHTML = flat.map((s) => `<option value="${escapeHtml(s.path)}">${escapeHtml(s.path)}</option>`).join("");
  }
  return (flat.find((s) => s.path === sub.value) || flat[0]).options || [];
}

function renderOptions() {
  const box = $("options");
  box.replaceChildren();
  const command = currentCommand();
  $("command-help").textContent = command ? command.description : "write in the channel (mention mimi to ask it)";
  if (!command) {
    box.innerHTML = '<label>text <input type="text" name="content" size="40"></label>'
      + '<label><input type="checkbox" name="mention" checked> mention @mimi</label>'
      + '<label>file <input type="file" name="files" multiple accept="audio/*,video/*"></label>';
    return;
  }
  for (const option of currentOptions()) {
    const label = document.createElement("label");
    label.innerHTML = `<span class="${option.required ? "required" : ""}">${escapeHtml(localName(option))}</span>`;
    let field;
    if (option.type === 11) field = Object.assign(document.createElement("input"), { type: "file", accept: "audio/*,video/*" });
    else if (option.type === 5) field = Object.assign(document.createElement("input"), { type: "checkbox" });
    else if (option.type === 4 || option.type === 10) field = Object.assign(document.createElement("input"), { type: "number" });
    else field = Object.assign(document.createElement("input"), { type: "text" });
    field.name = option.name;
    field.dataset.type = option.type;
    field.title = option.description || "";
    if (option.autocomplete) attachAutocomplete(field, option);
    label.append(field);
    box.append(label);
  }
}

function attachAutocomplete(field, option) {
  const list = document.createElement("datalist");
  list.id = "choices-" + option.name;
  field.setAttribute("list", list.id);
  field.after(list);
  let timer = null;
  const ask = async () => {
    try {
      const body = { ...who(), name: $("command").value, subcommand: $("subcommand").hidden ? null : $("subcommand").value,
        options: { [option.name]: field.value }, focused: option.name };
      const { choices } = await api("/api/autocomplete", body);
      list.innerHTML = choices.map((c) => `<option value="${escapeHtml(String(c.value))}">${escapeHtml(c.name)}</option>`).join("");
    } catch (err) { /* typing on: the next keystroke asks again */ }
  };
  field.addEventListener("focus", ask);
  field.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(ask, 200); });
}

async function upload(file) {
  const form = new FormData();
  form.append("file", file, file.name);
  const response = await fetch("/api/upload", { method: "POST", body: form });
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || "upload failed");
  return data.id;
}

$("composer").onsubmit = async (event) => {
  event.preventDefault();
  const fields = [...$("options").querySelectorAll("input")];
  $("send").disabled = true;
  try {
    if (!currentCommand()) {
      const files = fields.find((f) => f.name === "files").files;
      const uploads = [];
      for (const file of files) uploads.push(await upload(file));
      await act("/api/post", { ...who(), content: fields.find((f) => f.name === "content").value,
        mention: fields.find((f) => f.name === "mention").checked, uploads });
    } else {
      const options = {};
      for (const field of fields) {
        const type = Number(field.dataset.type);
        if (type === 11) { if (field.files.length) options[field.name] = { upload: await upload(field.files[0]) }; }
        else if (type === 5) { if (field.checked) options[field.name] = true; }
        else if (type === 4) { if (field.value !== "") options[field.name] = parseInt(field.value, 10); }
        else if (type === 10) { if (field.value !== "") options[field.name] = parseFloat(field.value); }
        else if (field.value !== "") options[field.name] = field.value;
      }
      await act("/api/command", { ...who(), name: $("command").value,
        subcommand: $("subcommand").hidden ? null : $("subcommand").value, options });
    }
    renderOptions(); // sent: the composer starts afresh, as Discord's does
  } catch (err) {
    $("status").textContent = err.message;
  } finally {
    $("send").disabled = false;
  }
};

$("command").onchange = renderOptions;
$("subcommand").onchange = renderOptions;
$("member").onchange = () => { state.user = Number($("member").value); state.shown = ""; refresh(); };
$("locale").onchange = () => { state.locale = $("locale").value; renderCommands(); };

function renderServers() {
  const side = $("servers");
  side.replaceChildren(...state.world.servers.map((server) => {
    const button = document.createElement("button");
    button.type = "button";
    button.title = server.name;
    button.textContent = server.name.slice(0, 2);
    button.className = server.id === state.guild ? "current" : "";
    button.onclick = () => { state.guild = server.id; state.shown = ""; renderServers(); refresh(); };
    return button;
  }));
  const server = state.world.servers.find((s) => s.id === state.guild);
  $("channel-name").textContent = "general · " + server.name;
}

async function start() {
  state.world = await api("/api/world");
  state.guild = state.world.servers[0].id;
  $("member").innerHTML = state.world.members.map((m) =>
    `<option value="${m.id}">${escapeHtml(m.name)}${m.manager ? " (manager)" : ""}</option>`).join("");
  state.user = state.world.members[0].id;
  renderServers();
  renderCommands();
  await refresh();
  setInterval(refresh, 600);
}

start();
