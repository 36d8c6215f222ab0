// The compressed HNSW kind (HNSW32,SQ8): named like the other kinds, found as well as exact search
// after re-ranking, and stored with its quantizer.
#include <doctest/doctest.h>

#include <set>

#include "bench/synthetic.h"
#include "index/flat_index.h"
#include "index/grouped_index.h"
#include "index/hnsw_index.h"
#include "index/index_factory.h"
#include "index/reranked_index.h"
#include "index/sq8_space.h"
#include "test_support.h"

using namespace cbir;

TEST_CASE("sq8: the kind is named and parsed like the others") {
    std::string error;
    for (const char* text : {"HNSW32,SQ8", "hnsw32,sq8", "hnswsq8"}) {
        const auto spec = parse_index_spec(text, IndexSpec{}, &error);
        REQUIRE(spec);
        CHECK(spec->kind == IndexKind::HnswSq8);
        CHECK(spec->describe() == "HNSW32,SQ8");
        CHECK(spec->reranks());
    }
    CHECK(parse_index_spec("HNSW16,SQ8", IndexSpec{}, &error)->hnsw_m == 16);
    CHECK(parse_index_kind("hnswsq8") == IndexKind::HnswSq8);
    CHECK_FALSE(parse_index_spec("HNSW32,SQ4", IndexSpec{}, &error));
}

TEST_CASE("sq8: codes keep each dimension to a 255th of its range") {
    const auto data = synthetic_features(2000, 32, 3);
    ScalarQuantizer q(32);
    q.train(data.data(), 2000);
    std::vector<uint8_t> code(32);
    for (size_t n = 0; n < 2000; ++n) {
        q.encode(&data[n * 32], code.data());
        for (int i = 0; i < 32; ++i) {
            const float decoded = q.minimum()[i] + q.step()[i] * code[i];
            CHECK(std::abs(decoded - data[n * 32 + i]) <= 0.5f * q.step()[i] * 1.001f);
        }
    }
}

TEST_CASE("sq8: HNSW on 8-bit codes, re-ranked exactly, finds the exact top 10 at 20k vectors") {
    constexpr int d = 64;
    constexpr size_t n = 20000, queries = 200;
    const auto base = synthetic_features(n, d, 11);
    const auto query = synthetic_features(queries, d, 12);
    const VectorFetcher fetch = [&](const std::vector<int64_t>& ids, std::vector<float>& out) {
        out.resize(ids.size() * d);
        for (size_t i = 0; i < ids.size(); ++i) std::copy_n(&base[(ids[i] - 1) * d], d, &out[i * d]);
    };
    const RowChunks rows = [&](const ChunkVisitor& visit) {
        std::vector<int64_t> ids(n);
        for (size_t i = 0; i < n; ++i) ids[i] = int64_t(i + 1);
        visit(ids.data(), base.data(), n);
    };
    for (Metric metric : {Metric::L2, Metric::Cosine}) {
        CAPTURE(metric_name(metric));
        IndexSpec spec;
        spec.kind = IndexKind::HnswSq8;
        auto built = build_index(spec, d, metric, n, rows, fetch);  // the store's path: trained, then filled
        test::TempDir dir;
        built->save(dir.path() / "index.hnswsq8", CatalogueState{});
        IndexFileHeader header;
        auto loaded = GroupedIndex::load(dir.path() / "index.hnswsq8", IndexSpec{}, fetch, header, IndexFileHolding::Mapped);
        CHECK(header.kind == "hnswsq8");
        CHECK(header.params[3] == IndexSpec::sq8_training_size(n));
        RerankedIndex reranked(std::move(loaded), fetch, 4);
        FlatIndex flat(d, metric);
        for (size_t i = 0; i < n; ++i) flat.add(int64_t(i + 1), &base[i * d]);
        size_t found = 0;
        for (size_t q = 0; q < queries; ++q) {
            std::set<int64_t> truth;
            for (const auto& hit : flat.search(&query[q * d], {10, 0, 0})) truth.insert(hit.id);
            const auto hits = reranked.search(&query[q * d], {10, 64, 0});
            for (const auto& hit : hits) found += truth.count(hit.id);
        }
        const double recall = double(found) / double(queries * 10);
        MESSAGE(metric_name(metric), ": SQ8 recall@10 after re-ranking ", recall);
        CHECK(recall >= 0.98);
    }
}
