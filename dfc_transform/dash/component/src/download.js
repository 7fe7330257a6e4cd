// dcc.Download, taught to save a URL: a FileOutput on a Download's `data` puts the served
// file's URL there (a string, which dcc.Download itself cannot take: it builds a Blob from
// {filename, content}). The browser then fetches the URL as an attachment (?download=1) and
// saves it under its name. The callback's output is the Download itself, nothing else: it
// fires exactly as a callback returning dcc.send_* would (once per click, also in tabs,
// pages, pattern-matching rows and background callbacks), and its answer carries a URL.
//
// This script is on the pages of apps with a FileServeTransform only. It may load before
// dash_core_components (Dash puts component libraries' scripts first): it then wraps
// Download the moment dcc's bundle sets window.dash_core_components.

const React = window.React;
const MARK = "__dfcDownload";

// The file's name: the URL's last segment, as the app wrote it (quoted whole).
function nameOf(url) {
    const path = url.split(/[?#]/)[0];
    try {
        return decodeURIComponent(path.slice(path.lastIndexOf("/") + 1));
    } catch (e) {
        return "";
    }
}

function save(url) {
    const link = document.createElement("a");
    const bare = url.split("#")[0]; // the fragment only makes each answer a new value
    link.href = bare + (bare.includes("?") ? "&" : "?") + "download=1";
    link.download = nameOf(url);
    link.style.display = "none";
    document.body.appendChild(link);
    link.click();
    link.remove();
}

// The library with a Download that saves URLs. Its exports are read-only getters (webpack's):
// the library is answered through a Proxy rather than changed.
function wrap(library) {
    if (!library || !library.Download || library[MARK]) return library;
    const Original = library.Download;
    function Download(props) {
        const url = typeof props.data === "string" ? props.data : null;
        // As dcc.Download: save when `data` changes, never when the component is first drawn
        // (a tab shown again, a row added, a page revisited must not save the last file again).
        const drawn = React.useRef(false);
        React.useEffect(() => {
            if (drawn.current && url) save(url);
            drawn.current = true;
        }, [props.data]);
        return React.createElement(Original, url ? {...props, data: null} : props);
    }
    // A URL is a valid `data` now; every other prop is checked as before.
    Download.propTypes = {...(Original.propTypes || {}), data: () => null};
    Download.defaultProps = Original.defaultProps;
    return new Proxy(library, {
        get(target, key, receiver) {
            if (key === "Download") return Download;
            if (key === MARK) return true;
            return Reflect.get(target, key, receiver);
        },
    });
}

export function installDownload() {
    if (window[MARK]) return;
    window[MARK] = true;
    if (window.dash_core_components) {
        window.dash_core_components = wrap(window.dash_core_components);
        return;
    }
    let library;
    Object.defineProperty(window, "dash_core_components", {
        configurable: true,
        enumerable: true,
        get: () => library,
        set: (value) => {
            library = wrap(value);
        },
    });
}
