// One file sent to the server's upload route in parts: retried, resumable, cancellable.
//
// The protocol (dfc_transform/uploads/protocol.py): POST <endpoint> {name, size, type}
// starts an upload and answers its handle and part layout; PUT <endpoint>/<handle>/<part>
// sends one part (the last one sent with ?complete=1 makes the stored file); GET
// <endpoint>/<handle> tells which parts the server has; DELETE <endpoint>/<handle> cancels.
// Every request carries the page's ticket in X-Upload-Ticket.

const PARALLEL = 2; // parts in flight at once
const RETRIES = 6; // attempts after the first, per request: 0.5, 1, 2, 4, 8, 8 s apart
const STALL_MS = 30000; // a request that sends nothing for this long is cut and retried
const CANCEL_AGAIN_MS = 3000; // after a cancel, parts cut off have stopped writing by then
const RETRYABLE = new Set([0, 408, 425, 429, 500, 502, 503, 504]);

export class Refused extends Error {}
export class Paused extends Error {}
export class Cancelled extends Error {}

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
        this.layout = null;
    }

    // Runs until the file is stored (its description), refused, paused or cancelled.
    async run() {
        this.emit("uploading");
        try {
            for (let round = 0; ; round++) {
                const status = await this.open();
                if (status.file) return this.finish(status.file);
                const file = await this.sendAll(status);
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
        const description = {name: this.file.name, size: this.file.size, type: this.file.type};
        const started = await this.call("POST", this.ticket.endpoint, JSON.stringify(description));
        if (started.status !== 201) throw new Refused(messageOf(started));
        this.handle = started.body.upload;
        remember(this.key, this.handle);
        return this.use(started.body);
    }

    use(status) {
        this.layout = status;
        this.acked.clear();
        for (const part of status.received) this.acked.set(part, this.length(part));
        this.progress();
        return status;
    }

    // Sends the missing parts, then the last one with ?complete=1; the stored file's
    // description, or null when the server found parts missing (another round).
    async sendAll(status) {
        const todo = [];
        for (let part = 0; part < status.parts; part++) if (!this.acked.has(part)) todo.push(part);
        const last = todo.length ? todo.pop() : status.parts - 1;
        const queue = todo.slice();
        const worker = async () => {
            while (queue.length) {
                const part = queue.shift();
                const answer = await this.sendPart(part, false);
                if (answer && answer.file) return answer.file;
            }
            return null;
        };
        const found = await Promise.all(Array.from({length: Math.min(PARALLEL, queue.length)}, worker));
        const early = found.find((f) => f);
        if (early) return early;
        const answer = await this.sendPart(last, true);
        return answer && answer.file ? answer.file : null;
    }

    async sendPart(part, complete) {
        const start = part * this.layout.part_size;
        const blob = this.file.slice(start, start + this.length(part));
        const url = `${this.ticket.endpoint}/${this.handle}/${part}${complete ? "?complete=1" : ""}`;
        for (let attempt = 0; ; attempt++) {
            const answer = await this.request("PUT", url, blob, (sent) => {
                this.inflight.set(part, sent);
                this.progress();
            });
            this.inflight.delete(part);
            if (answer.status === 200) {
                this.acked.set(part, this.length(part));
                this.progress();
                return answer.body;
            }
            if (answer.status === 409) {
                // Parts the server never got: the next round sends them.
                for (const missing of (answer.body && answer.body.missing) || []) this.acked.delete(missing);
                this.progress();
                return null;
            }
            const reason = answer.body && answer.body.reason;
            if (!RETRYABLE.has(answer.status) && reason !== "short") throw new Refused(messageOf(answer));
            if (attempt >= RETRIES) throw new Paused("the connection was lost");
            this.emit("retrying", "connection lost: retrying…");
            await sleep(backoff(attempt));
            // The part may have arrived though its answer was lost: ask before sending it again.
            const status = await this.call("GET", `${this.ticket.endpoint}/${this.handle}`);
            if (status.status === 200) {
                if (status.body.file) return {file: status.body.file};
                if (!complete && status.body.received.includes(part)) {
                    this.use(status.body);
                    return null;
                }
            }
            this.emit("uploading");
        }
    }

    // A request retried on network errors and 5xx; answers {status, body}.
    async call(method, url, body) {
        for (let attempt = 0; ; attempt++) {
            const answer = await this.request(method, url, body);
            if (!RETRYABLE.has(answer.status)) return answer;
            if (attempt >= RETRIES) throw new Paused("the connection was lost");
            this.emit("retrying", "connection lost: retrying…");
            await sleep(backoff(attempt));
        }
    }

    request(method, url, body, onSent) {
        if (this.cancelled) return Promise.reject(new Cancelled());
        return this.send(method, url, body, onSent);
    }

    send(method, url, body, onSent) {
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
            xhr.setRequestHeader("X-Upload-Ticket", this.ticket.token);
            if (typeof body === "string") xhr.setRequestHeader("Content-Type", "application/json");
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
