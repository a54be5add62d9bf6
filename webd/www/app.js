/*
 * localcap's flow viewer.  Plain JavaScript, no build step, nothing from
 * elsewhere.  Every byte that came from a flow (headers, bodies, names)
 * reaches the page through textContent or a blob: URL of an image, never
 * as markup: a recorded "<script>" is text.  Control and bidirectional
 * formatting characters are shown as visible escapes, so a header cannot
 * reorder what the page says.
 *
 * The page's state is in its address fragment (#flow=ID&filter=TEXT&tab=
 * procs), so a link or a test opens a given view.
 */
'use strict';

const PAGE = 100;			// rows per request
const $ = (id) => document.getElementById(id);

const state = {
	filter: '',
	rows: new Map(),		// id -> <tr>
	order: [],			// ids shown, newest first
	before: null,			// cursor for older rows
	serial: 0,			// newest completion seen
	selected: null,
	tab: 'flows',
	source: null,
	loading: false,
};

/* --- text that came from a flow ------------------------------------------ */

// C0/C1 controls, DEL, and the bidirectional / zero-width formatting marks.
const HIDDEN = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u061c\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb]/g;

// A node showing s as text, its invisible characters as \uXXXX marks.
function text(s) {
	const frag = document.createDocumentFragment();
	if (s === null || s === undefined)
		return frag;
	s = String(s);
	let last = 0;
	HIDDEN.lastIndex = 0;
	for (let m; (m = HIDDEN.exec(s)) !== null;) {
		if (m.index > last)
			frag.appendChild(document.createTextNode(s.slice(last, m.index)));
		const esc = document.createElement('span');
		esc.className = 'esc';
		esc.textContent = '\\u' + m[0].charCodeAt(0).toString(16).padStart(4, '0');
		frag.appendChild(esc);
		last = m.index + 1;
	}
	if (last < s.length)
		frag.appendChild(document.createTextNode(s.slice(last)));
	return frag;
}

function el(tag, cls, content) {
	const e = document.createElement(tag);
	if (cls)
		e.className = cls;
	if (content !== undefined && content !== null)
		e.appendChild(content instanceof Node ? content : text(content));
	return e;
}

function clear(e) {
	while (e.firstChild)
		e.removeChild(e.firstChild);
}

function say(msg, bad) {
	const m = $('msg');
	m.textContent = msg || '';
	m.className = bad ? 'bad' : '';
}

/* --- formatting ------------------------------------------------------------ */

function fmtSize(n) {
	if (n === null || n === undefined)
		return '';
	if (n < 1024)
		return n + ' B';
	if (n < 1048576)
		return (n / 1024).toFixed(1) + ' KiB';
	if (n < 1073741824)
		return (n / 1048576).toFixed(1) + ' MiB';
	return (n / 1073741824).toFixed(1) + ' GiB';
}

function fmtDur(us) {
	if (us === null || us === undefined || us < 0)
		return '';
	if (us < 10000)
		return (us / 1000).toFixed(1) + ' ms';
	if (us < 1000000)
		return Math.round(us / 1000) + ' ms';
	return (us / 1e6).toFixed(2) + ' s';
}

function fmtTime(us) {
	const d = new Date(us / 1000);
	const p = (n, w) => String(n).padStart(w || 2, '0');
	return p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds()) +
	    '.' + p(d.getMilliseconds(), 3);
}

/* --- the API ------------------------------------------------------------------ */

async function api(path, opts) {
	const r = await fetch(path, Object.assign({ credentials: 'same-origin',
	    cache: 'no-store' }, opts || {}));
	if (r.status === 401)
		throw new Error('not authorised: open the URL that "localcapctl web" printed');
	const isJson = (r.headers.get('Content-Type') || '').startsWith('application/json');
	const body = isJson ? await r.json() : await r.blob();
	if (!r.ok)
		throw new Error(isJson && body.error ? body.error : r.status + ' ' + r.statusText);
	return body;
}

function flowsQuery(extra) {
	const q = new URLSearchParams();
	if (state.filter)
		q.set('filter', state.filter);
	for (const [k, v] of Object.entries(extra))
		q.set(k, v);
	return '/api/flows?' + q.toString();
}

/* --- the list --------------------------------------------------------------------- */

function kindOf(f) {
	if (f.kind === 'dns')
		return 'dns';
	if (f.kind === 'http')
		return /^(HTTP\/2|h2)/i.test(f.http_version || '') ? 'h2' : 'http';
	return 'raw';
}

function what(f) {
	const k = kindOf(f);
	if (k === 'dns')
		return 'DNS ' + (f.qtype || '');
	if (k === 'raw')
		return (f.proto || f.kind || '?').toUpperCase();
	return f.method || '?';
}

function statusText(f) {
	if (f.status !== null && f.status !== undefined)
		return String(f.status);
	return f.result || '';
}

function statusClass(f) {
	const s = f.status;
	if (s !== null && s !== undefined)
		return s < 300 ? 'ok' : s < 400 ? 'redir' : s < 500 ? 'warn' : 'err';
	const r = f.result || '';
	return /^(closed|NOERROR|running)$/.test(r) ? 'ok' : 'err';
}

function hostPath(f) {
	const k = kindOf(f);
	if (k === 'dns')
		return [f.host || '(malformed message)', ''];
	if (k === 'raw')
		return [f.host || f.dst || '', f.host && f.dst ? f.dst : ''];
	return [f.host || '', f.path || ''];
}

function makeRow(f) {
	const tr = document.createElement('tr');
	const k = kindOf(f);
	const [host, path] = hostPath(f);
	tr.className = 'row k-' + k + (f.id === state.selected ? ' sel' : '');
	tr.dataset.id = f.id;
	tr.appendChild(el('td', 'c-time', fmtTime(f.start_us)));
	const proc = el('td', 'c-proc', f.process || '?');
	if (f.pid)
		proc.appendChild(el('span', 'pid', ' ' + f.pid));
	tr.appendChild(proc);
	const w = el('td', 'c-what');
	w.appendChild(el('span', 'badge b-' + k, what(f)));
	if (k === 'h2')
		w.appendChild(el('span', 'badge b-proto', 'h2'));
	if ((k === 'http' || k === 'h2') && f.proto === 'https')
		w.appendChild(el('span', 'badge b-tls', 'TLS'));
	if (f.grpc)
		w.appendChild(el('span', 'badge b-proto', 'gRPC'));
	tr.appendChild(w);
	tr.appendChild(el('td', 'c-host', host));
	tr.appendChild(el('td', 'c-path', path));
	tr.appendChild(el('td', 'c-status ' + statusClass(f), statusText(f)));
	tr.appendChild(el('td', 'c-size', fmtSize(k === 'raw' && f.bytes_up !== null ?
	    (f.bytes_up || 0) + (f.bytes_down || 0) : f.bytes_down)));
	tr.appendChild(el('td', 'c-dur', fmtDur(f.duration_us)));
	tr.addEventListener('click', () => select(f.id));
	return tr;
}

// Place f in the list: a known id is updated in place; a new one goes in
// by start time (newest first).
function upsert(f, atEnd) {
	const tbody = $('rows');
	const tr = makeRow(f);
	tr.dataset.start = f.start_us;
	const old = state.rows.get(f.id);
	if (old) {
		tbody.replaceChild(tr, old);
		state.rows.set(f.id, tr);
		return;
	}
	state.rows.set(f.id, tr);
	if (atEnd) {
		tbody.appendChild(tr);
		return;
	}
	let ref = tbody.firstChild;
	while (ref && Number(ref.dataset.start) > f.start_us)
		ref = ref.nextSibling;
	tbody.insertBefore(tr, ref);
}

function showCount() {
	$('count').textContent = state.rows.size + (state.before ? '+' : '') + ' shown';
	$('empty').hidden = state.rows.size !== 0;
	$('more').hidden = !state.before;
}

async function loadFirst() {
	state.rows.clear();
	clear($('rows'));
	state.before = null;
	try {
		const r = await api(flowsQuery({ limit: PAGE }));
		for (const f of r.flows)
			upsert(f, true);
		state.before = r.more ? r.before : null;
		state.serial = r.serial || 0;
		say('');
	} catch (e) {
		say(e.message, true);
	}
	showCount();
}

async function loadOlder() {
	if (!state.before || state.loading)
		return;
	state.loading = true;
	try {
		const r = await api(flowsQuery({ limit: PAGE, before: state.before }));
		for (const f of r.flows)
			upsert(f, true);
		state.before = r.more ? r.before : null;
	} catch (e) {
		say(e.message, true);
	}
	state.loading = false;
	showCount();
}

// What completed since the last look (the event stream says when).
async function loadNewer() {
	if (state.loading)
		return;
	state.loading = true;
	try {
		const r = await api(flowsQuery({ since_serial: state.serial }));
		for (const f of r.flows)
			upsert(f, false);
		if (r.serial > state.serial)
			state.serial = r.serial;
	} catch (e) {
		say(e.message, true);
	}
	state.loading = false;
	showCount();
}

function listen() {
	if (state.source)
		state.source.close();
	const es = new EventSource('/api/events');
	state.source = es;
	es.addEventListener('open', () => { $('live').className = 'live on'; });
	es.addEventListener('error', () => { $('live').className = 'live off'; });
	es.addEventListener('flows', (ev) => {
		let serial = 0;
		try {
			serial = JSON.parse(ev.data).serial;
		} catch (e) {
			return;
		}
		if (serial > state.serial)
			loadNewer();
	});
}

/* --- the detail pane ---------------------------------------------------------------- */

function section(title) {
	const s = el('section', 'd-sec');
	s.appendChild(el('h3', null, title));
	return s;
}

function kv(dl, k, v) {
	if (v === null || v === undefined || v === '')
		return;
	dl.appendChild(el('dt', null, k));
	dl.appendChild(el('dd', null, v instanceof Node ? v : String(v)));
}

function headersTable(list) {
	const t = el('table', 'headers');
	for (const h of list || []) {
		const tr = document.createElement('tr');
		tr.appendChild(el('th', null, h[0]));
		tr.appendChild(el('td', null, h[1]));
		t.appendChild(tr);
	}
	return t;
}

function headerValue(list, name) {
	for (const h of list || [])
		if (String(h[0]).toLowerCase() === name)
			return String(h[1]);
	return '';
}

// A body, fetched when asked for: JSON pretty-printed, text as text,
// images shown from a blob: URL, anything else as a hex dump.
function bodyBlock(id, side, size, truncated, ctype) {
	const box = el('div', 'body');
	if (!size)
		return box;
	const label = side === 'req' ? 'request body' : 'response body';
	const btn = el('button', 'load', 'Show ' + label + ' (' + fmtSize(size) +
	    (truncated ? ', truncated' : '') + ')');
	btn.type = 'button';
	box.appendChild(btn);
	const load = async () => {
		btn.disabled = true;
		try {
			const blob = await api('/api/flows/' + encodeURIComponent(id) +
			    '/body?side=' + side);
			renderBody(box, blob, ctype);
			btn.remove();
		} catch (e) {
			btn.disabled = false;
			say(e.message, true);
		}
	};
	btn.addEventListener('click', load);
	// Small bodies come at once.
	if (size <= 65536)
		load();
	return box;
}

const IMAGE_TYPES = /^image\/(png|jpeg|gif|webp|avif|bmp|x-icon|vnd\.microsoft\.icon|svg\+xml)$/;

async function renderBody(box, blob, ctype) {
	const mime = (ctype || '').split(';')[0].trim().toLowerCase();
	if (IMAGE_TYPES.test(mime)) {
		// An <img> never runs a script, even from an SVG.
		const img = document.createElement('img');
		img.className = 'shot';
		img.alt = mime;
		img.src = URL.createObjectURL(new Blob([blob], { type: mime }));
		box.appendChild(img);
		return;
	}
	const bytes = new Uint8Array(await blob.arrayBuffer());
	let s = null;
	try {
		s = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
	} catch (e) {
		s = null;
	}
	if (s !== null && /json/.test(mime)) {
		try {
			s = JSON.stringify(JSON.parse(s), null, 2);
		} catch (e) { /* shown as it is */ }
	}
	box.appendChild(el('pre', s !== null ? 'text' : 'text hex', s !== null ? s : hexdump(bytes)));
}

function hexdump(b) {
	const lines = [];
	const n = Math.min(b.length, 65536);
	for (let i = 0; i < n; i += 16) {
		let hex = '', asc = '';
		for (let j = 0; j < 16; j++) {
			if (i + j < n) {
				hex += b[i + j].toString(16).padStart(2, '0') + ' ';
				asc += b[i + j] >= 0x20 && b[i + j] < 0x7f ?
				    String.fromCharCode(b[i + j]) : '.';
			} else
				hex += '   ';
		}
		lines.push(i.toString(16).padStart(8, '0') + '  ' + hex + ' |' + asc + '|');
	}
	if (b.length > n)
		lines.push('… ' + (b.length - n) + ' more bytes');
	return lines.join('\n');
}

// Phases of one exchange (and its connection) as bars on one time line.
function waterfall(flow, x) {
	const phases = [];
	if (x && x.seq === 1 && flow.connect_us !== null && flow.connect_us !== undefined)
		phases.push(['connect', flow.connect_us]);
	if (x && x.seq === 1 && flow.tls_handshake_us !== null && flow.tls_handshake_us !== undefined)
		phases.push(['TLS', flow.tls_handshake_us]);
	if (x) {
		const t0 = x.req_start_us;
		const sent = x.req_end_us !== null ? x.req_end_us : t0;
		if (t0 !== null) {
			phases.push(['send', Math.max(0, sent - t0)]);
			if (x.resp_start_us !== null)
				phases.push(['wait', Math.max(0, x.resp_start_us - sent)]);
			if (x.resp_start_us !== null && x.resp_end_us !== null)
				phases.push(['receive', Math.max(0, x.resp_end_us - x.resp_start_us)]);
		}
	} else if (flow.end_us !== null && flow.end_us !== undefined) {
		phases.push(['open', flow.end_us - flow.start_us]);
	}
	const total = phases.reduce((a, p) => a + p[1], 0);
	const w = el('div', 'waterfall');
	let at = 0;
	for (const [name, us] of phases) {
		const row = el('div', 'wf-row');
		row.appendChild(el('span', 'wf-name', name));
		const track = el('span', 'wf-track');
		const bar = el('span', 'wf-bar wf-' + name.toLowerCase());
		// CSSOM, not a style attribute: allowed by the page's CSP.
		bar.style.marginLeft = (total ? 100 * at / total : 0) + '%';
		bar.style.width = Math.max(total ? 100 * us / total : 0, 0.5) + '%';
		track.appendChild(bar);
		row.appendChild(track);
		row.appendChild(el('span', 'wf-ms', fmtDur(us)));
		w.appendChild(row);
		at += us;
	}
	return w;
}

function renderDetail(d, id) {
	const body = $('detail-body');
	clear(body);
	const f = d.flow;
	const seqWanted = id.includes('.') ? Number(id.split('.')[1]) : 0;
	$('detail-title').textContent = '';
	$('detail-title').appendChild(text(id + '  ' + (f.process || '?') +
	    (f.pid ? ' (' + f.pid + ')' : '')));

	const sum = section('Connection');
	const dl = el('dl', 'facts');
	kv(dl, 'transport', f.transport);
	kv(dl, 'from', f.src);
	kv(dl, 'to', f.dst);
	kv(dl, 'host', f.host);
	kv(dl, 'protocol', f.protocol || 'not detected');
	kv(dl, 'process', (f.process || '?') + ' (pid ' + f.pid + ', uid ' + f.uid +
	    ', gid ' + f.gid + ')');
	kv(dl, 'executable', f.exe);
	kv(dl, 'cgroup', f.cgroup);
	kv(dl, 'started', f.start);
	kv(dl, 'connect', fmtDur(f.connect_us));
	kv(dl, 'TLS handshake', fmtDur(f.tls_handshake_us));
	kv(dl, 'lasted', f.end_us ? fmtDur(f.end_us - f.start_us) + ', ' +
	    (f.end_reason || '') : 'running');
	kv(dl, 'bytes', f.bytes_up !== null && f.bytes_up !== undefined ?
	    f.bytes_up + ' up, ' + f.bytes_down + ' down' : null);
	kv(dl, 'error', f.error);
	kv(dl, 'passthrough', f.passthrough_reason);
	sum.appendChild(dl);
	body.appendChild(sum);

	const tlsf = f.tls, cert = f.server_cert;
	if (tlsf || cert) {
		const tls = section('TLS');
		const t = el('dl', 'facts');
		if (tlsf) {
			kv(t, 'app side', [tlsf.version, tlsf.cipher,
			    tlsf.resumed ? '(resumed)' : ''].filter(Boolean).join(' '));
			kv(t, 'SNI', tlsf.sni);
			kv(t, 'ALPN', tlsf.alpn);
			kv(t, 'ALPN offered', tlsf.alpn_offered);
			kv(t, 'server side', [tlsf.upstream_version, tlsf.upstream_cipher,
			    tlsf.upstream_resumed ? '(resumed)' : ''].filter(Boolean).join(' '));
		}
		if (cert) {
			kv(t, 'server cert', cert.subject);
			kv(t, 'issuer', cert.issuer);
			if (cert.verified !== null && cert.verified !== undefined)
				kv(t, 'verified', cert.verified ? 'yes' : 'NO');
			kv(t, 'sha256', cert.sha256);
		}
		tls.appendChild(t);
		body.appendChild(tls);
	}
	if (f.transport === 'tcp' && (f.retransmits !== null || f.rtt_us !== null ||
	    f.packets_up !== null)) {
		const tcp = section('TCP');
		const t = el('dl', 'facts');
		kv(t, 'packets', f.packets_up !== null && f.packets_up !== undefined ?
		    f.packets_up + ' up, ' + f.packets_down + ' down' : null);
		kv(t, 'retransmits', f.retransmits);
		kv(t, 'rtt', fmtDur(f.rtt_us));
		tcp.appendChild(t);
		body.appendChild(tcp);
	} else if (f.transport === 'udp' && f.packets_up !== null && f.packets_up !== undefined) {
		const udp = section('UDP');
		const t = el('dl', 'facts');
		kv(t, 'datagrams', f.packets_up + ' up, ' + f.packets_down + ' down');
		udp.appendChild(t);
		body.appendChild(udp);
	}

	for (const x of d.exchanges || []) {
		if (seqWanted && x.seq !== seqWanted)
			continue;
		const xid = f.id + '.' + x.seq;
		const s = section('HTTP ' + xid);
		s.appendChild(el('p', 'reqline', (x.method || '?') + ' ' + (x.url || '') +
		    ' ' + (x.http_version || '')));
		s.appendChild(el('h4', null, 'Request headers'));
		s.appendChild(headersTable(x.request_headers));
		s.appendChild(bodyBlock(xid, 'req', x.req_body_size, x.req_body_truncated,
		    headerValue(x.request_headers, 'content-type')));
		if (x.status === null || x.status === undefined)
			s.appendChild(el('p', 'bad', 'no response'));
		else {
			s.appendChild(el('p', 'respline', (x.http_version || '') + ' ' +
			    x.status + ' ' + (x.reason || '')));
			s.appendChild(el('h4', null, 'Response headers'));
			s.appendChild(headersTable(x.response_headers));
			s.appendChild(bodyBlock(xid, 'resp', x.resp_body_size,
			    x.resp_body_truncated, headerValue(x.response_headers, 'content-type')));
		}
		// HTTP/2: trailers each way; gRPC's outcome.
		if (x.request_trailers && x.request_trailers.length) {
			s.appendChild(el('h4', null, 'Request trailers'));
			s.appendChild(headersTable(x.request_trailers));
		}
		if (x.response_trailers && x.response_trailers.length) {
			s.appendChild(el('h4', null, 'Response trailers'));
			s.appendChild(headersTable(x.response_trailers));
		}
		if (x.grpc) {
			s.appendChild(el('h4', null, 'gRPC'));
			const g = el('dl', 'facts');
			kv(g, 'status', x.grpc.status);
			kv(g, 'message', x.grpc.message);
			kv(g, 'messages', (x.grpc.request_messages === null ? '?' :
			    x.grpc.request_messages) + ' up, ' + (x.grpc.response_messages ===
			    null ? '?' : x.grpc.response_messages) + ' down');
			s.appendChild(g);
		}
		if (x.error)
			s.appendChild(el('p', 'bad', 'error: ' + x.error));
		s.appendChild(el('h4', null, 'Timings'));
		s.appendChild(waterfall(f, x));
		body.appendChild(s);
	}
	for (const q of d.dns || []) {
		if (seqWanted && q.seq !== seqWanted)
			continue;
		const s = section('DNS ' + f.id + '.' + q.seq);
		const t = el('dl', 'facts');
		kv(t, 'question', (q.qname || '?') + ' ' + (q.qtype || ''));
		kv(t, 'message id', q.msg_id);
		kv(t, 'answer', q.rcode ? q.rcode + (q.response_us && q.query_us ?
		    ' after ' + fmtDur(q.response_us - q.query_us) : '') : 'none');
		kv(t, 'error', q.error);
		s.appendChild(t);
		const at = el('table', 'headers');
		for (const a of q.answers || []) {
			const tr = document.createElement('tr');
			tr.appendChild(el('th', null, a.name));
			tr.appendChild(el('td', null, (a.type || '') + ' ' +
			    (a.ttl === null || a.ttl === undefined ? '' : a.ttl) + ' ' + (a.data || '')));
			at.appendChild(tr);
		}
		s.appendChild(at);
		body.appendChild(s);
	}
	if (!(d.exchanges || []).length && !(d.dns || []).length) {
		const s = section('Timings');
		s.appendChild(waterfall(f, null));
		body.appendChild(s);
	}
	if (f.first_up || f.first_down) {
		const s = section('First bytes');
		if (f.first_up) {
			s.appendChild(el('h4', null, 'from the app'));
			s.appendChild(el('pre', 'text hex', hexdump(b64bytes(f.first_up))));
		}
		if (f.first_down) {
			s.appendChild(el('h4', null, 'to the app'));
			s.appendChild(el('pre', 'text hex', hexdump(b64bytes(f.first_down))));
		}
		body.appendChild(s);
	}
}

function b64bytes(s) {
	const bin = atob(s);
	const b = new Uint8Array(bin.length);
	for (let i = 0; i < bin.length; i++)
		b[i] = bin.charCodeAt(i);
	return b;
}

async function select(id) {
	state.selected = id;
	for (const [rid, tr] of state.rows)
		tr.classList.toggle('sel', rid === id);
	writeHash();
	if (!id) {
		$('detail').hidden = true;
		$('split').classList.remove('with-detail');
		return;
	}
	$('detail').hidden = false;
	$('split').classList.add('with-detail');
	try {
		const d = await api('/api/flows/' + encodeURIComponent(id));
		if (state.selected === id)
			renderDetail(d, id);
	} catch (e) {
		clear($('detail-body'));
		$('detail-body').appendChild(el('p', 'bad', e.message));
	}
}

/* --- processes ------------------------------------------------------------------------ */

async function loadProcs() {
	const tbody = $('proc-rows');
	try {
		const r = await api('/api/processes');
		clear(tbody);
		$('spec-line').textContent = '';
		const cap = r.capture;
		$('spec-line').appendChild(text(cap ? 'capturing: ' + (cap.spec || 'nothing') +
		    (cap.note ? ' — ' + cap.note : '') : 'capture state unknown: ' +
		    (r.capture_error || 'redirectord did not answer')));
		// Sorted by the server: captured first, then those with flows.
		for (const p of r.processes) {
			const tr = el('tr', p.captured ? 'captured' : '');
			tr.dataset.pid = p.pid;
			tr.appendChild(el('td', null, String(p.pid)));
			tr.appendChild(el('td', null, p.user !== null && p.user !== undefined ?
			    p.user : String(p.uid)));
			tr.appendChild(el('td', null, p.name));
			if (p.exe === null && p.argv0) {
				// Another user's process: the viewer may not read its
				// executable; its own argv[0] is shown, marked as such.
				const td = el('td', 'c-exe said', '[' + p.argv0 + ']');
				td.title = 'argv[0], as the process gives it: the viewer ' +
				    'may not read this process\'s executable';
				tr.appendChild(td);
			} else
				tr.appendChild(el('td', 'c-exe', p.exe));
			tr.appendChild(el('td', 'c-unit', p.unit || p.cgroup || ''));
			tr.appendChild(el('td', null, p.flows === null ? '' : String(p.flows)));
			const by = p.decided_by ? ' (' + p.decided_by + ')' : '';
			tr.appendChild(el('td', null, p.captured === null ? '?' :
			    (p.captured ? 'yes' : 'no') + by));
			if (p.reason)
				tr.lastChild.title = p.reason;
			const b = el('button', 'act', p.captured ? 'Detach' : 'Attach');
			b.type = 'button';
			b.addEventListener('click', () => attach(p, !p.captured, b));
			const td = document.createElement('td');
			td.appendChild(b);
			tr.appendChild(td);
			tbody.appendChild(tr);
		}
		say('');
	} catch (e) {
		say(e.message, true);
	}
}

async function attach(p, on, button) {
	button.disabled = true;
	// Detach removes the item that decided (it may be a name: every
	// process of that name then goes direct).
	const spec = on ? String(p.pid) : (p.decided_by || String(p.pid));
	let msg = null, bad = false;
	try {
		const r = await api(on ? '/api/attach' : '/api/detach', {
			method: 'POST',
			headers: { 'Content-Type': 'application/json' },
			body: JSON.stringify({ spec: spec }),
		});
		msg = (on ? 'attached ' : 'detached ') + spec + '; capturing: ' +
		    (r.spec || 'nothing');
	} catch (e) {
		msg = e.message;
		bad = true;
	}
	await loadProcs();
	say(msg, bad);
}

/* --- tabs, filter, address fragment ------------------------------------------------------ */

function setTab(tab) {
	state.tab = tab;
	$('flows-view').hidden = tab !== 'flows';
	$('procs-view').hidden = tab !== 'procs';
	$('tab-flows').setAttribute('aria-selected', String(tab === 'flows'));
	$('tab-procs').setAttribute('aria-selected', String(tab === 'procs'));
	if (tab === 'procs')
		loadProcs();
	writeHash();
}

function readHash() {
	const h = new URLSearchParams(location.hash.slice(1));
	return { flow: h.get('flow'), filter: h.get('filter') || '', tab: h.get('tab') || 'flows' };
}

function writeHash() {
	const h = new URLSearchParams();
	if (state.selected)
		h.set('flow', state.selected);
	if (state.filter)
		h.set('filter', state.filter);
	if (state.tab !== 'flows')
		h.set('tab', state.tab);
	const s = h.toString();
	history.replaceState(null, '', s ? '#' + s : location.pathname);
}

function updateHarLink() {
	const q = new URLSearchParams();
	if (state.filter)
		q.set('filter', state.filter);
	$('har').href = '/api/export.har' + (state.filter ? '?' + q.toString() : '');
}

function start() {
	const h = readHash();
	state.filter = h.filter;
	$('filter').value = h.filter;
	updateHarLink();
	let timer = null;
	$('filter-form').addEventListener('submit', (e) => e.preventDefault());
	$('filter').addEventListener('input', () => {
		clearTimeout(timer);
		timer = setTimeout(() => {
			state.filter = $('filter').value.trim();
			writeHash();
			updateHarLink();
			loadFirst();
		}, 250);
	});
	$('more').addEventListener('click', loadOlder);
	$('detail-close').addEventListener('click', () => select(null));
	$('tab-flows').addEventListener('click', () => setTab('flows'));
	$('tab-procs').addEventListener('click', () => setTab('procs'));
	// Near the bottom of the list: the next page.
	$('list-wrap').addEventListener('scroll', () => {
		const w = $('list-wrap');
		if (w.scrollTop + w.clientHeight > w.scrollHeight - 200)
			loadOlder();
	});
	loadFirst().then(() => {
		listen();
		if (h.flow)
			select(h.flow);
	});
	if (h.tab === 'procs')
		setTab('procs');
	// The address's fragment changed by hand, a link or Back: follow it.
	window.addEventListener('hashchange', () => {
		const n = readHash();
		if (n.filter !== state.filter) {
			state.filter = n.filter;
			$('filter').value = n.filter;
			updateHarLink();
			loadFirst();
		}
		if (n.tab !== state.tab)
			setTab(n.tab);
		if (n.flow !== state.selected)
			select(n.flow);
	});
}

document.addEventListener('DOMContentLoaded', start);
