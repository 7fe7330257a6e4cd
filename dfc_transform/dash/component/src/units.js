// Sizes as people read them, in the units the server's messages use (binary: KiB, MiB,
// GiB), so that "files up to 10.0 MiB" reads alike in the browser and in the server's answers.
const UNITS = ["KiB", "MiB", "GiB", "TiB"];

export function humanSize(bytes) {
    if (bytes < 1024) return `${bytes} bytes`;
    let value = bytes;
    for (const unit of UNITS) {
        value /= 1024;
        if (value < 1024 || unit === UNITS[UNITS.length - 1]) return `${value.toFixed(1)} ${unit}`;
    }
    return `${bytes} bytes`;
}
