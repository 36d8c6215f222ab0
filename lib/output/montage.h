#pragma once
// A contact sheet: each query's thumbnail followed by its hits, captioned with rank and distance,
// in a grid, written as a PNG or JPEG. People would rather look than read.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace cbir {

struct MontageTile {
    std::filesystem::path image;
    std::string caption;
};

// A query and its first 10 hits fit one row; more wrap onto further rows.
inline constexpr size_t kMaxRowTiles = 11;

struct MontageLayout {
    int columns = 0;     // tiles per row (0: one row per query, up to kMaxRowTiles); a query's tiles wrap
    int thumbnail = 192; // the longer side of each thumbnail, in pixels
};

// Each inner vector is one query's tiles (the query first) and starts a new row. An image that
// cannot be read gets a grey tile with its caption. Written atomically, as PNG or JPEG by the
// name's extension (another is refused). Returns the image size.
std::pair<int, int> write_montage(const std::filesystem::path& output, const std::vector<std::vector<MontageTile>>& groups,
                                  const MontageLayout& layout);

// ".png" or ".jpg" for a sheet of this name; nothing when it is neither (checked before a query runs).
std::optional<std::string> montage_encoding(const std::filesystem::path& output);

// The size of one tile, for callers that check the grid.
int montage_tile_width(const MontageLayout& layout);
// A caption cut to `width` pixels as drawn: the rank and distance kept, the path's start given up
// first (its end names the file), so neighbouring captions never run into each other.
std::string fitted_caption(const std::string& caption, int width);
int montage_tile_height(const MontageLayout& layout);

}  // namespace cbir
