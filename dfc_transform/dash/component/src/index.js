// The bundle's entry: Dash finds components at window[namespace][type].
import Upload from "./Upload.jsx";

window.dfc_transform = Object.assign(window.dfc_transform || {}, {Upload});
