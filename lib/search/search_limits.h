#pragma once
// The bounds of a search and of the work behind it: one set for the command line and the HTTP API.
namespace cbir {

struct Bounds {
    int min;
    int max;
    bool contains(long long value) const { return value >= min && value <= max; }
};

inline constexpr Bounds kTopKBounds{1, 10000};       // results per query; more is a scan (use cbir embed)
inline constexpr Bounds kEfBounds{0, 100000};        // HNSW search breadth; 0 = the store's default
inline constexpr Bounds kNprobeBounds{0, 1 << 20};   // IVF lists visited; 0 = the store's default
inline constexpr Bounds kBatchBounds{1, 1024};       // images per forward pass
inline constexpr Bounds kThreadBounds{0, 1024};      // 0 = all cores

}  // namespace cbir
