// IVF-Flat and IVF-PQ (FAISS) against exact search, their files, and the index strings.
#include <doctest/doctest.h>

#include <fstream>
#include <random>
#include <set>

#include "index/flat_index.h"
#include "index/index_spec.h"
#include "index/ivf_index.h"
#include "index/reranked_index.h"
#include "test_support.h"

using namespace cbir;

namespace {

// Clustered, low intrinsic dimension (as in test_index.cpp), 64-d to keep training quick.
std::vector<float> clustered(size_t count, int dimension, unsigned seed) {
    std::mt19937 basis_rng(99);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    constexpr int kClusters = 50, kLatent = 6;
    std::vector<float> centres(kClusters * dimension), directions(kClusters * kLatent * dimension);
    for (auto& v : centres) v = 3.0f * normal(basis_rng);
    for (auto& v : directions) v = normal(basis_rng);
    std::mt19937 rng(seed);
    std::vector<float> out(count * dimension);
    for (size_t i = 0; i < count; ++i) {
        const size_t c = rng() % kClusters;
        for (int d = 0; d < dimension; ++d) out[i * dimension + d] = centres[c * dimension + d] + 0.1f * normal(rng);
        for (int l = 0; l < kLatent; ++l) {
            const float w = normal(rng);
            for (int d = 0; d < dimension; ++d) out[i * dimension + d] += w * directions[(c * kLatent + l) * dimension + d];
        }
    }
    return out;
}

double recall_at_10(const VectorIndex& index, const FlatIndex& exact, const std::vector<float>& queries, int dimension,
                    SearchParams params) {
    params.k = 10;
    size_t found = 0, total = 0;
    for (size_t q = 0; q < queries.size() / dimension; ++q) {
        std::set<int64_t> truth;
        for (const auto& n : exact.search(&queries[q * dimension], {10, 0})) truth.insert(n.id);
        for (const auto& n : index.search(&queries[q * dimension], params)) found += truth.count(n.id);
        total += truth.size();
    }
    return double(found) / double(total);
}

}  // namespace

TEST_CASE("index spec: factory strings and short names") {
    std::string error;
    auto hnsw = parse_index_spec("HNSW32", IndexSpec{}, &error);
    REQUIRE(hnsw);
    CHECK(hnsw->kind == IndexKind::Hnsw);
    CHECK(hnsw->hnsw_m == 32);
    auto ivf = parse_index_spec("IVF2048,Flat", IndexSpec{}, &error);
    REQUIRE(ivf);
    CHECK(ivf->kind == IndexKind::Ivf);
    CHECK(ivf->ivf_nlist == 2048);
    CHECK(ivf->describe() == "IVF2048,Flat");
    auto pq = parse_index_spec("IVF1024,PQ64", IndexSpec{}, &error);
    REQUIRE(pq);
    CHECK(pq->kind == IndexKind::IvfPq);
    CHECK(pq->pq_m == 64);
    CHECK(pq->pq_bits == 8);
    CHECK(parse_index_spec("flat", IndexSpec{}, &error)->describe() == "Flat");
    CHECK(parse_index_spec("ivf", IndexSpec{}, &error)->describe() == "IVFauto,Flat");
    CHECK_FALSE(parse_index_spec("LSH", IndexSpec{}, &error));
    CHECK(error.find("unknown index") != std::string::npos);
    CHECK_FALSE(parse_index_spec("HNSW1", IndexSpec{}, &error));
}

TEST_CASE("index spec: nlist grows as 4 sqrt(N) and keeps 39 points per list") {
    CHECK(choose_ivf_nlist(1000000) == 2048);  // 4 sqrt(1e6) = 4000 -> 2048
    CHECK(choose_ivf_nlist(100000) == 1024);
    CHECK(choose_ivf_nlist(10000) == 256);
    CHECK(choose_ivf_nlist(1000) / 1 <= 1000 / 39);
}

TEST_CASE("ivf: IVF-Flat recall@10 and IVF-PQ with exact re-ranking, for l2 and cosine") {
    constexpr int d = 64;
    const size_t n = 20000;
    const auto data = clustered(n, d, 1);
    const auto queries = clustered(200, d, 2);
    for (Metric metric : {Metric::L2, Metric::Cosine}) {
        CAPTURE(metric_name(metric));
        FlatIndex exact(d, metric);
        for (size_t i = 0; i < n; ++i) exact.add(int64_t(i + 1), &data[i * d]);
        std::vector<int64_t> ids(n);
        for (size_t i = 0; i < n; ++i) ids[i] = int64_t(i + 1);

        IndexSpec spec;
        spec.kind = IndexKind::Ivf;
        spec.ivf_nlist = choose_ivf_nlist(n);
        IvfIndex ivf(d, metric, spec);
        ivf.train(data.data(), n);
        ivf.add_batch(ids.data(), data.data(), n, false);
        CHECK(ivf.size() == n);
        SearchParams params;
        params.nprobe = IndexSpec{}.ivf_nprobe;
        const double ivf_recall = recall_at_10(ivf, exact, queries, d, params);
        CHECK(ivf_recall >= 0.95);

        spec.kind = IndexKind::IvfPq;
        spec.pq_m = 16;
        auto pq = std::make_unique<IvfIndex>(d, metric, spec);
        pq->train(data.data(), n);
        pq->add_batch(ids.data(), data.data(), n, false);
        const double raw_recall = recall_at_10(*pq, exact, queries, d, params);
        RerankedIndex reranked(std::move(pq), [&](const std::vector<int64_t>& wanted, std::vector<float>& out) {
            out.resize(wanted.size() * d);
            for (size_t i = 0; i < wanted.size(); ++i)
                std::copy(&data[(wanted[i] - 1) * d], &data[wanted[i] * d], &out[i * d]);
        });
        const double reranked_recall = recall_at_10(reranked, exact, queries, d, params);
        MESSAGE(metric_name(metric) << ": IVF-Flat " << ivf_recall << ", IVF-PQ " << raw_recall << ", re-ranked "
                                    << reranked_recall);
        CHECK(reranked_recall >= 0.9);
        CHECK(reranked_recall > raw_recall);
    }
}

TEST_CASE("ivf: re-adding an id replaces it; the file round-trips; damage is detected") {
    constexpr int d = 32;
    const size_t n = 12000;
    const auto data = clustered(n, d, 3);
    std::vector<int64_t> ids(n);
    for (size_t i = 0; i < n; ++i) ids[i] = int64_t(i + 100);
    IndexSpec spec;
    spec.kind = IndexKind::Ivf;
    spec.ivf_nlist = 64;
    IvfIndex ivf(d, Metric::L2, spec);
    ivf.train(data.data(), n);
    ivf.add_batch(ids.data(), data.data(), n, false);
    // Move id 100 onto vector 5's place: it must be found there, once.
    ivf.add(100, &data[5 * d]);
    CHECK(ivf.size() == n);
    const auto hits = ivf.search(&data[5 * d], {2, 0, 64});
    REQUIRE(hits.size() == 2);
    CHECK(std::set<int64_t>{hits[0].id, hits[1].id} == std::set<int64_t>{100, 105});

    test::TempDir dir;
    const auto file = dir.path() / "index.ivf";
    PayloadFile payload;
    IndexFileHeader written;
    ivf.write_payload(payload, written);
    written.built_from.generation = 7;
    write_index_file(file, written, payload, "");
    IndexFileHeader header;
    auto mapped = map_index_file(file, header);
    auto loaded = IvfIndex::from_payload(mapped, header, IndexSpec{}, file.string());
    CHECK(header.kind == "ivf");
    CHECK(header.built_from.generation == 7);
    CHECK(loaded->size() == n);
    CHECK(loaded->nlist() == 64);
    CHECK(loaded->trained_on() == n);
    for (size_t q = 0; q < 20; ++q) {
        const auto a = ivf.search(&data[q * d], {10, 0, 8});
        const auto b = loaded->search(&data[q * d], {10, 0, 8});
        REQUIRE(a.size() == b.size());
        for (size_t r = 0; r < a.size(); ++r) CHECK(a[r].id == b[r].id);
    }
    std::filesystem::resize_file(file, std::filesystem::file_size(file) - 1);
    CHECK_THROWS_AS(map_index_file(file, header), IndexFileError);
}
