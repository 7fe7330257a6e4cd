// The Upload component: drag and drop or a button; each file goes to the server in parts
// (see transfer.js) with a progress bar; the finished files' descriptions go to `value`.

import {Cancelled, Refused, Transfer} from "./transfer.js";
import {ensureStyles} from "./styles.js";
import {humanSize} from "./units.js";

const React = window.React;
const {useEffect, useRef, useState} = React;


function acceptList(accept) {
    if (!accept) return [];
    const entries = Array.isArray(accept) ? accept : String(accept).split(",");
    return entries.map((a) => a.trim().toLowerCase()).filter(Boolean);
}

// Whether the browser-side file matches `accept` as the server will check it.
export function accepted(entries, name, type) {
    if (!entries.length) return true;
    const lower = name.toLowerCase();
    const mime = (type || "").split(";")[0].trim().toLowerCase();
    return entries.some((entry) => {
        if (entry.startsWith(".")) return lower.endsWith(entry);
        if (entry.endsWith("/*")) return mime.startsWith(entry.slice(0, -1));
        return mime === entry;
    });
}

const STATUS_TEXT = {
    waiting: () => "waiting",
    done: () => "uploaded",
    cancelled: () => "cancelled",
};

function describe(item) {
    if (item.message && item.state !== "uploading") return item.message;
    if (STATUS_TEXT[item.state]) return STATUS_TEXT[item.state]();
    const percent = item.size ? Math.floor((100 * item.sent) / item.size) : 100;
    return `${percent}% · ${humanSize(item.sent)} of ${humanSize(item.size)}`;
}

let nextKey = 1;

export default function Upload(props) {
    const {id, children, multiple, accept, max_size, disabled, ticket, style, className, setProps} = props;
    const [items, setItems] = useState([]);
    const [active, setActive] = useState(false);
    const [notice, setNotice] = useState(null);
    const input = useRef(null);
    const transfers = useRef(new Map());
    const mounted = useRef(true);

    useEffect(() => {
        ensureStyles();
        mounted.current = true;
        const resume = () => {
            for (const [key, transfer] of transfers.current) if (transfer.paused) restart(key);
        };
        window.addEventListener("online", resume);
        return () => {
            mounted.current = false;
            window.removeEventListener("online", resume);
        };
    }, []);

    const update = (key, changes) => {
        if (!mounted.current) return;
        setItems((all) => all.map((item) => (item.key === key ? {...item, ...changes} : item)));
    };

    // Progress comes many times a second: the bar moves at most every 100 ms.
    const watch = (key) => {
        let shown = 0;
        return (state, sent, message) => {
            const now = Date.now();
            if (state === null) {
                if (now - shown < 100) return;
                shown = now;
                update(key, {sent});
                return;
            }
            shown = now;
            update(key, {state, sent, message: message || null});
        };
    };

    const owner = typeof id === "object" ? JSON.stringify(id) : String(id);

    async function send(key, transfer) {
        transfers.current.set(key, transfer);
        transfer.paused = false;
        try {
            return await transfer.run();
        } catch (err) {
            transfer.paused = !(err instanceof Cancelled || err instanceof Refused) && !transfer.cancelled;
            return null;
        }
    }

    async function restart(key) {
        const transfer = transfers.current.get(key);
        if (!transfer) return;
        const file = await send(key, transfer);
        if (file) finishBatch(transfer.batch);
    }

    function finishBatch(batch) {
        if (!batch || batch.reported) return;
        const done = batch.keys.map((k) => transfers.current.get(k)).filter((t) => t && t.result);
        const pending = batch.keys.some((k) => {
            const t = transfers.current.get(k);
            return t && !t.result && t.paused;
        });
        if (pending || !done.length) return;
        batch.reported = true;
        const files = done.map((t) => t.result);
        setProps({value: multiple ? files : files[0]});
    }

    async function pick(fileList) {
        const files = Array.from(fileList || []);
        if (!files.length || disabled) return;
        setNotice(null);
        if (!ticket || !ticket.token) {
            setNotice(
                "Uploads are not available: the app serving this page has no FileServeTransform.",
            );
            return;
        }
        if (!multiple && files.length > 1) {
            setNotice("Please choose one file.");
            return;
        }
        const entries = acceptList(accept);
        const batch = {keys: [], reported: false};
        const fresh = files.map((file) => {
            const key = nextKey++;
            let message = null;
            if (!accepted(entries, file.name, file.type)) {
                message = `${file.name} is not a type this upload accepts (${entries.join(", ")})`;
            } else if (max_size !== undefined && max_size !== null && max_size >= 0 && file.size > max_size) {
                message = `${file.name} is ${humanSize(file.size)}; this upload takes files up to ${humanSize(max_size)}`;
            }
            return {key, file, name: file.name, size: file.size, sent: 0, state: message ? "refused" : "waiting", message};
        });
        for (const transfer of transfers.current.values()) if (!transfer.result) transfer.cancel();
        transfers.current.clear();
        setItems(fresh.map(({file, ...item}) => item));
        for (const item of fresh) {
            if (item.state === "refused") continue;
            const transfer = new Transfer(item.file, ticket, owner, watch(item.key));
            transfer.batch = batch;
            batch.keys.push(item.key);
            transfers.current.set(item.key, transfer);
        }
        // One file at a time, its parts in parallel.
        for (const key of batch.keys) {
            const transfer = transfers.current.get(key);
            if (!transfer || transfer.cancelled) continue;
            transfer.result = await send(key, transfer);
        }
        finishBatch(batch);
    }

    function cancel(key) {
        const transfer = transfers.current.get(key);
        update(key, {state: "cancelled", message: null});
        if (!transfer) return;
        transfer.cancel();
        transfer.paused = false;
        finishBatch(transfer.batch);
    }

    async function retry(key) {
        const transfer = transfers.current.get(key);
        if (!transfer) return;
        transfer.result = await send(key, transfer);
        finishBatch(transfer.batch);
    }

    const classes = ["dfc-upload"];
    if (active) classes.push("dfc-upload--active");
    if (disabled) classes.push("dfc-upload--disabled");
    if (className) classes.push(className);

    const open = (event) => {
        if (disabled || event.target.closest(".dfc-upload__files")) return;
        if (input.current) input.current.click();
    };
    const drag = (on) => (event) => {
        event.preventDefault();
        if (!disabled) setActive(on);
    };

    return (
        <div
            id={typeof id === "object" ? JSON.stringify(id) : id}
            className={classes.join(" ")}
            style={style}
            aria-disabled={disabled ? "true" : undefined}
            onClick={open}
            onDragEnter={drag(true)}
            onDragOver={drag(true)}
            onDragLeave={drag(false)}
            onDrop={(event) => {
                event.preventDefault();
                setActive(false);
                if (!disabled) pick(event.dataTransfer.files);
            }}
        >
            <input
                ref={input}
                className="dfc-upload__input"
                type="file"
                multiple={!!multiple}
                accept={acceptList(accept).join(",") || undefined}
                disabled={!!disabled}
                onChange={(event) => {
                    pick(event.target.files);
                    event.target.value = "";
                }}
            />
            <div className="dfc-upload__prompt">
                {children || (multiple ? "Drag and drop files here, or " : "Drag and drop a file here, or ")}
                <button type="button" className="dfc-upload__button" disabled={!!disabled}>
                    {multiple ? "choose files" : "choose a file"}
                </button>
            </div>
            {notice ? (
                <div className="dfc-upload__notice" role="alert">
                    {notice}
                </div>
            ) : null}
            {items.length ? (
                <ul className="dfc-upload__files">
                    {items.map((item) => {
                        const percent = item.size ? Math.floor((1000 * item.sent) / item.size) / 10 : 100;
                        const running = ["waiting", "uploading", "retrying"].includes(item.state);
                        const stopped = item.state === "paused";
                        return (
                            <li key={item.key} className={`dfc-upload__file dfc-upload__file--${item.state}`}>
                                <div className="dfc-upload__row">
                                    <span className="dfc-upload__name">{item.name}</span>
                                    <span className="dfc-upload__status" role={item.state === "refused" ? "alert" : undefined}>
                                        {describe(item)}
                                    </span>
                                    {stopped ? (
                                        <button type="button" className="dfc-upload__retry" onClick={() => retry(item.key)}>
                                            Resume
                                        </button>
                                    ) : null}
                                    {running || stopped ? (
                                        <button type="button" className="dfc-upload__cancel" onClick={() => cancel(item.key)}>
                                            Cancel
                                        </button>
                                    ) : null}
                                </div>
                                <div
                                    className="dfc-upload__bar"
                                    role="progressbar"
                                    aria-label={`upload of ${item.name}`}
                                    aria-valuemin="0"
                                    aria-valuemax="100"
                                    aria-valuenow={String(percent)}
                                >
                                    <div className="dfc-upload__fill" style={{width: `${percent}%`}} />
                                </div>
                            </li>
                        );
                    })}
                </ul>
            ) : null}
        </div>
    );
}
