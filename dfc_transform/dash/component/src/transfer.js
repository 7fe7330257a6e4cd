// One file sent to the server's upload route in parts: retried, resumable, cancellable.
//
// The protocol (dfc_transform/http/uploads.py): POST <endpoint> {name, size, type,
// lastModified} starts an upload and answers its handle and part layout; PUT
// <endpoint>/<handle>/<part> sends one part (its CRC-32 is computed as it goes); POST
// <endpoint>/<handle> {parts: [crc32...]} completes it, naming every part's checksum;
// GET <endpoint>/<handle> tells which parts the server has; DELETE cancels. Every request
// carries the page's ticket in X-Upload-Ticket. JSON goes as text/plain: some servers'
// middleware reads application/json bodies before the route can.
//
// On a store that keeps files in a bucket (S3), the status lists in `direct` a signed URL
// per part: each part is PUT there, straight to the bucket, with no header of ours (the
// bucket checks the signature, and the app checks the parts' sizes when it completes).

import {crc32} from "./crc32.js";

const PARALLEL = 2; // parts in flight at once
const RETRIES = 6; // attempts after the first, per request: 0.5, 1, 2, 4, 8, 8 s apart
const STALL_MS = 30000; // a request that sends nothing for this long is cut and retried
const CANCEL_AGAIN_MS = 3000; // after a cancel, parts cut off have stopped writing by then
const RETRYABLE = new Set([0, 408, 425, 429, 500, 502, 503, 504]);

export class Refused extends Error {}
export class Paused extends Error {}
export class Cancelled extends Error {}
// The server gave the upload up (idle too long, or past its deadline): start it again.
class Gone extends Error {}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const backoff = (attempt) => Math.min(8000, 500 * 2 ** attempt);

function remember(key, value) {
    try {
        if (value === null) window.localStorage.removeItem(key);
        else window.localStorage.setItem(key, value);
    } catch (e) {
        // Storage may be off (private mode): resuming after a reload is then not offered.
    }
}

function recall(key) {
    try {
        return window.localStorage.getItem(key);
    } catch (e) {
        return null;
    }
}

export class Transfer {
    // file: a File; ticket: {token, endpoint}; owner: the component's id (for resuming);
    // onChange(state, sent, message): called as the transfer goes.
    constructor(file, ticket, owner, onChange) {
        this.file = file;
        this.ticket = ticket;
        this.onChange = onChange;
        this.key = `dfc-upload:${owner}:${file.name}:${file.size}:${file.lastModified}`;
        this.handle = null;
        this.requests = new Set();
        this.cancelled = false;
        this.acked = new Map(); // part -> bytes, parts the server has
        this.inflight = new Map(); // part -> bytes sent so far
        this.crcs = new Map(); // part -> CRC-32 of this file's bytes, as computed here
        this.layout = null;
    }

    // Runs until the file is stored (its description), refused, paused or cancelled.
    async run() {
        this.emit("uploading");
        try {
            for (let round = 0; ; round++) {
                let file;
                try {
                    const status = await this.open();
                    if (status.file) return this.finish(status.file);
                    file = await this.sendAll();
                } catch (err) {
                    if (!(err instanceof Gone) || round > 3) throw err;
                    // Given up on the server: what it had is gone, start from the first part.
                    this.handle = null;
                    remember(this.key, null);
                    this.emit("retrying", err.message);
                    continue;
                }
                if (file) return this.finish(file);
                if (round > 3) throw new Paused("the server keeps missing parts");
            }
        } catch (err) {
            this.inflight.clear();
            if (err instanceof Cancelled || this.cancelled) {
                this.emit("cancelled");
            } else if (err instanceof Refused) {
                remember(this.key, null);
                this.emit("refused", err.message);
            } else {
                this.emit("paused", err.message || String(err));
            }
            throw err;
        }
    }

    cancel() {
        const parts = this.requests.size;
        this.cancelled = true;
        for (const xhr of this.requests) xhr.abort();
        remember(this.key, null);
        if (!this.handle) return;
        const url = `${this.ticket.endpoint}/${this.handle}`;
        const remove = () => this.send("DELETE", url).catch(() => {});
        remove();
        // A part cut off by the abort may still be writing its last chunk on the server:
        // what it leaves is removed by a second request once it has given up.
        if (parts) setTimeout(remove, CANCEL_AGAIN_MS);
    }

    // The upload's status: resumed from an earlier handle (this page's, or a reloaded
    // page's from localStorage) when the server still knows it, else a new upload.
    async open() {
        const handle = this.handle || recall(this.key);
        if (handle) {
            const found = await this.call("GET", `${this.ticket.endpoint}/${handle}`);
            if (found.status === 200) {
                this.handle = handle;
                return this.use(found.body);
            }
            remember(this.key, null); // gone or given up: start again
        }
        const description = {
            name: this.file.name,
            size: this.file.size,
            type: this.file.type,
            lastModified: this.file.lastModified,
        };
        const started = await this.call("POST", this.ticket.endpoint, JSON.stringify(description));
        if (started.status !== 201) throw new Refused(messageOf(started));
        this.handle = started.body.upload;
        this.crcs.clear();
        remember(this.key, this.handle);
        return this.use(started.body);
    }

    // Takes the server's word for which parts it has: those whose checksum differs from
    // this file's part (another client's bytes) are sent again.
    use(status) {
        this.layout = status;
        this.acked.clear();
        const theirs = status.crc32 || {};
        for (const part of status.received) {
            const mine = this.crcs.get(part);
            if (mine && theirs[part] && mine !== theirs[part]) continue;
            this.acked.set(part, this.length(part));
        }
        this.progress();
        return status;
    }

    // Sends the missing parts, then completes the upload; the stored file's description,
    // or null when the server found parts missing or different (another round).
    async sendAll() {
        const queue = [];
        for (let part = 0; part < this.layout.parts; part++) if (!this.acked.has(part)) queue.push(part);
        const worker = async () => {
            while (queue.length) await this.sendPart(queue.shift());
        };
        await Promise.all(Array.from({length: Math.min(PARALLEL, queue.length)}, worker));
        const parts = [];
        for (let part = 0; part < this.layout.parts; part++) {
            // Straight to the bucket: the app checks the parts' sizes, not their bytes.
            parts.push(this.layout.direct ? "00000000" : await this.crcOf(part));
        }
        const done = await this.call("POST", `${this.ticket.endpoint}/${this.handle}`, JSON.stringify({parts}));
        if (done.status === 200) return done.body.file;
        if (done.status === 409 && done.body) {
            // Parts the server never got, or got other bytes for: the next round sends them.
            for (const part of [...(done.body.missing || []), ...(done.body.mismatched || [])]) {
                this.acked.delete(part);
            }
            this.progress();
            return null;
        }
        throw this.failure(done);
    }

    async crcOf(part) {
        if (!this.crcs.has(part)) this.crcs.set(part, crc32(await this.slice(part).arrayBuffer()));
        return this.crcs.get(part);
    }

    slice(part) {
        const start = part * this.layout.part_size;
        return this.file.slice(start, start + this.length(part));
    }

    async sendPart(part) {
        // The Blob goes, not the bytes read for the checksum: the browser streams it from the
        // file (with progress events as it goes), and no second copy of the part stays in memory.
        const body = this.slice(part);
        const direct = this.layout.direct ? this.layout.direct[part] : null;
        // The checksum is computed while the part goes, not before it (that would stall the
        // upload by the time it takes): the completion names it, and the server refuses a
        // file whose parts are not those bytes (409 "mismatched": the part is sent again).
        const crcReady = direct ? Promise.resolve(null) : this.crcOf(part);
        crcReady.catch(() => {}); // read again (and its error reported) below
        const url = direct || `${this.ticket.endpoint}/${this.handle}/${part}`;
        for (let attempt = 0; ; attempt++) {
            const answer = await this.request("PUT", url, body, (sent) => {
                this.inflight.set(part, sent);
                this.progress();
            });
            this.inflight.delete(part);
            // Awaited before the next part starts: no more than PARALLEL parts read in memory.
            const crc = await crcReady;
            if (answer.status === 200) {
                this.acked.set(part, this.length(part));
                this.progress();
                return;
            }
            const reason = answer.body && answer.body.reason;
            // The bucket's refusals are not ours to explain: retried like a lost connection.
            if (!direct && !RETRYABLE.has(answer.status) && reason !== "short") throw this.failure(answer);
            if (attempt >= RETRIES) throw new Paused(messageOf(answer));
            this.emit("retrying", `${messageOf(answer)}: retrying…`);
            await sleep(backoff(attempt));
            // The part may have arrived though its answer was lost: ask before sending it again.
            const status = await this.call("GET", `${this.ticket.endpoint}/${this.handle}`);
            if (status.status === 410) throw new Gone(messageOf(status));
            if (status.status === 200 && status.body.received.includes(part)) {
                const theirs = (status.body.crc32 || {})[part];
                if (!theirs || theirs === crc) {
                    this.acked.set(part, this.length(part));
                    this.progress();
                    return;
                }
            }
            this.emit("uploading");
        }
    }

    // The error for an answer that is no success: the server gave the upload up (start
    // again), or refused it (its message is shown).
    failure(answer) {
        if (answer.status === 410 && answer.body && answer.body.reason !== "cancelled") {
            return new Gone(messageOf(answer));
        }
        return new Refused(messageOf(answer));
    }

    // A request retried on network errors and 5xx; answers {status, body}.
    async call(method, url, body) {
        for (let attempt = 0; ; attempt++) {
            const answer = await this.request(method, url, body);
            if (!RETRYABLE.has(answer.status)) return answer;
            if (attempt >= RETRIES) throw new Paused(messageOf(answer));
            this.emit("retrying", `${messageOf(answer)}: retrying…`);
            await sleep(backoff(attempt));
        }
    }

    request(method, url, body, onSent, headers) {
        if (this.cancelled) return Promise.reject(new Cancelled());
        return this.send(method, url, body, onSent, headers);
    }

    send(method, url, body, onSent, headers) {
        return new Promise((resolve, reject) => {
            const xhr = new XMLHttpRequest();
            let last = Date.now();
            let stalled = false;
            const watchdog = setInterval(() => {
                if (Date.now() - last > STALL_MS) {
                    stalled = true;
                    xhr.abort();
                }
            }, 1000);
            const settle = () => {
                clearInterval(watchdog);
                this.requests.delete(xhr);
            };
            xhr.open(method, url);
            // A part for the bucket (headers null) carries nothing of ours: it is signed as it is.
            if (headers !== null) xhr.setRequestHeader("X-Upload-Ticket", this.ticket.token);
            for (const [name, value] of Object.entries(headers || {})) xhr.setRequestHeader(name, value);
            if (typeof body === "string") xhr.setRequestHeader("Content-Type", "text/plain;charset=UTF-8");
            xhr.upload.onprogress = (event) => {
                last = Date.now();
                if (onSent) onSent(event.loaded);
            };
            xhr.onprogress = () => {
                last = Date.now();
            };
            xhr.onload = () => {
                settle();
                let parsed = null;
                try {
                    parsed = JSON.parse(xhr.responseText);
                } catch (e) {
                    parsed = null;
                }
                resolve({status: xhr.status, body: parsed});
            };
            xhr.onerror = () => {
                settle();
                resolve({status: 0, body: null});
            };
            xhr.onabort = () => {
                settle();
                if (stalled && !this.cancelled) resolve({status: 0, body: null});
                else reject(new Cancelled());
            };
            this.requests.add(xhr);
            xhr.send(body === undefined ? null : body);
        });
    }

    length(part) {
        const size = this.file.size;
        const partSize = this.layout.part_size;
        return Math.max(0, Math.min(size, (part + 1) * partSize) - part * partSize);
    }

    progress() {
        let sent = 0;
        for (const bytes of this.acked.values()) sent += bytes;
        for (const bytes of this.inflight.values()) sent += bytes;
        this.sent = Math.min(sent, this.file.size);
        this.onChange(null, this.sent);
    }

    finish(file) {
        remember(this.key, null);
        this.sent = this.file.size;
        this.emit("done");
        return file;
    }

    emit(state, message) {
        this.onChange(state, this.sent || 0, message);
    }
}

function messageOf(answer) {
    if (answer.body && answer.body.error) return answer.body.error;
    return answer.status ? `the server refused the upload (HTTP ${answer.status})` : "the connection was lost";
}
