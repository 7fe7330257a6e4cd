// CRC-32 (IEEE 802.3, the one zlib.crc32 computes), over an ArrayBuffer. Each part's
// checksum goes with it (X-Part-CRC32) and the completion names them all, so that the
// server stores exactly the bytes this page sent. Not crypto.subtle's SHA-256: that
// exists only in secure contexts, and apps are often served over plain http on a LAN.

const TABLE = (() => {
    const table = new Int32Array(256);
    for (let n = 0; n < 256; n++) {
        let c = n;
        for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
        table[n] = c;
    }
    return table;
})();

// The CRC-32 of `buffer`, as 8 lowercase hexadecimal digits.
export function crc32(buffer) {
    const bytes = new Uint8Array(buffer);
    let crc = -1;
    for (let i = 0; i < bytes.length; i++) crc = TABLE[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
    return ((crc ^ -1) >>> 0).toString(16).padStart(8, "0");
}
