#pragma once
// What one image may cost: its pixels (every decoder buffer is sized from them) and its file's bytes
// (read whole into memory). Both are checked before the costly step: pixels from the header before
// decoding, bytes from the file's size before reading.
#include <cstdint>
#include <string>

#include "image/image_header.h"

namespace cbir {

// Images above this many pixels are refused before decoding (a 24 MP photo has 24e6; the cap leaves
// room for large panoramas and stops decompression bombs). Override with $CBIR_MAX_PIXELS.
inline constexpr long long kDefaultMaxPixels = 250'000'000;
long long max_image_pixels();

// Files above this many bytes are refused before they are read. The default follows the pixel cap:
// 3 bytes per allowed pixel (an 8-bit RGB image stored uncompressed, the largest a compressed image
// of that many pixels gets) plus 64 MiB of metadata (EXIF, ICC profiles, an appended video). Override
// with $CBIR_MAX_FILE_BYTES.
inline constexpr uint64_t kFileBytesPerPixel = 3;
inline constexpr uint64_t kFileMetadataBytes = 64ull << 20;
uint64_t max_image_file_bytes();

// Why an image of this header may not be decoded ("image of W×H pixels exceeds the limit of N
// (CBIR_MAX_PIXELS) …"), or empty.
std::string image_limit_error(const ImageHeader& header);

// "file of N bytes is larger than the M allowed (CBIR_MAX_FILE_BYTES)", or empty.
std::string file_size_limit_error(uint64_t size);

}  // namespace cbir
