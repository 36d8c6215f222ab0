#pragma once
// Memory for decoding is bounded for the whole process, not only per image: every decode holds its
// image's pixels from one budget, the pixel cap (CBIR_MAX_PIXELS), until the decoded image is gone.
// A photo of 12 megapixels never waits (twenty fit at once); eight server threads handed eight
// 236-megapixel uploads decode them one after another instead of holding some 20 GB together.
#include <memory>

namespace cbir {

// Blocks until `pixels` (at most the budget) are free; they return when the last copy of the
// ticket is released.
std::shared_ptr<const void> reserve_decode_pixels(long long pixels);

}  // namespace cbir
