#pragma once
// Distances, chosen at index time and recorded in the store. l2 is the squared Euclidean distance,
// as Milvus and hnswlib report it; ip is 1 - dot product (hnswlib's convention, smaller is closer);
// cosine is 1 - cosine similarity, computed as ip on unit-normalised vectors.
#include <cstddef>
#include <optional>
#include <string>

namespace cbir {

enum class Metric { L2, InnerProduct, Cosine };

std::string metric_name(Metric metric);          // "l2", "ip", "cosine"
std::optional<Metric> parse_metric(const std::string& name);
std::string metric_description(Metric metric);   // for output headers: "squared L2", ...

// The vector as the index stores it: unit-normalised for cosine, unchanged otherwise.
void prepare_for_metric(Metric metric, float* vector, size_t dimension);
float distance(Metric metric, const float* a, const float* b, size_t dimension);
// A distance as results report it: within the metric's range ([0, 2] for cosine, >= 0 for l2).
// Float rounding takes an image's distance to itself to -1.2e-07 ("-0.0000" in a table).
float reported_distance(Metric metric, float distance);
// Plain measures between two raw vectors, whatever a store's metric.
double cosine_similarity(const float* a, const float* b, size_t dimension);
double squared_l2(const float* a, const float* b, size_t dimension);

}  // namespace cbir
