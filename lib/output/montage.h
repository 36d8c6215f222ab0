#pragma once
// A contact sheet: each query's thumbnail followed by its hits, captioned with rank and distance,
// in a grid, written as a PNG. People would rather look than read.
#include <filesystem>
#include <string>
#include <vector>

namespace cbir {

struct MontageTile {
    std::filesystem::path image;
    std::string caption;
};

struct MontageLayout {
    int columns = 6;     // tiles per row; a query's tiles wrap onto further rows
    int thumbnail = 192; // the longer side of each thumbnail, in pixels
};

// Each inner vector is one query's tiles (the query first) and starts a new row. An image that
// cannot be read gets a grey tile with its caption. Written atomically. Returns the image size.
std::pair<int, int> write_montage(const std::filesystem::path& output, const std::vector<std::vector<MontageTile>>& groups,
                                  const MontageLayout& layout);

// The size of one tile, for callers that check the grid.
int montage_tile_width(const MontageLayout& layout);
int montage_tile_height(const MontageLayout& layout);

}  // namespace cbir
