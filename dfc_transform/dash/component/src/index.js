// The bundle's entry: Dash finds components at window[namespace][type]. It may be on a page
// twice (an app's transform adds it, and the Upload component's library): the second time
// changes nothing.
import Upload from "./Upload.jsx";
import {installDownload} from "./download.js";

window.dfc_transform = Object.assign(window.dfc_transform || {}, {Upload});
installDownload();
