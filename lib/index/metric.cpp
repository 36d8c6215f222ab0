#include "index/metric.h"

#include <algorithm>
#include <cmath>

namespace cbir {

std::string metric_name(Metric metric) {
    switch (metric) {
        case Metric::L2: return "l2";
        case Metric::InnerProduct: return "ip";
        case Metric::Cosine: return "cosine";
    }
    return "?";
}

std::optional<Metric> parse_metric(const std::string& name) {
    if (name == "l2") return Metric::L2;
    if (name == "ip") return Metric::InnerProduct;
    if (name == "cosine") return Metric::Cosine;
    return std::nullopt;
}

std::string metric_description(Metric metric) {
    switch (metric) {
        case Metric::L2: return "squared L2";
        case Metric::InnerProduct: return "1 - inner product";
        case Metric::Cosine: return "1 - cosine similarity";
    }
    return "?";
}

void prepare_for_metric(Metric metric, float* vector, size_t dimension) {
    if (metric != Metric::Cosine) return;
    double norm2 = 0.0;
    for (size_t i = 0; i < dimension; ++i) norm2 += static_cast<double>(vector[i]) * vector[i];
    if (norm2 <= 0.0) return;
    const float scale = static_cast<float>(1.0 / std::sqrt(norm2));
    for (size_t i = 0; i < dimension; ++i) vector[i] *= scale;
}

float distance(Metric metric, const float* a, const float* b, size_t dimension) {
    if (metric == Metric::L2) {
        float sum = 0.0f;
        for (size_t i = 0; i < dimension; ++i) {
            const float d = a[i] - b[i];
            sum += d * d;
        }
        return sum;
    }
    float dot = 0.0f;
    for (size_t i = 0; i < dimension; ++i) dot += a[i] * b[i];
    return 1.0f - dot;
}

double cosine_similarity(const float* a, const float* b, size_t dimension) {
    double dot = 0, na = 0, nb = 0;
    for (size_t i = 0; i < dimension; ++i) {
        dot += double(a[i]) * b[i];
        na += double(a[i]) * a[i];
        nb += double(b[i]) * b[i];
    }
    return na > 0 && nb > 0 ? dot / std::sqrt(na * nb) : 0.0;
}

double squared_l2(const float* a, const float* b, size_t dimension) {
    double sum = 0;
    for (size_t i = 0; i < dimension; ++i) sum += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    return sum;
}

}  // namespace cbir

namespace cbir {

float reported_distance(Metric metric, float distance) {
    switch (metric) {
        case Metric::Cosine: return std::min(std::max(distance, 0.0f), 2.0f);
        case Metric::L2: return std::max(distance, 0.0f);
        case Metric::InnerProduct: return distance;  // 1 - dot product of unnormalised vectors: any value
    }
    return distance;
}

}  // namespace cbir
