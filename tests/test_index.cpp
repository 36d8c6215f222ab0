// HNSW against its brute-force twin, and the index file container against damage.
#include <doctest/doctest.h>

#include <fstream>
#include <random>
#include <set>

#include "index/flat_index.h"
#include "index/grouped_index.h"
#include "index/hnsw_index.h"
#include "test_support.h"

using namespace cbir;

namespace {

// Vectors shaped like image features: 20 clusters, each spread along a few directions of its own
// (low intrinsic dimension) plus a little isotropic noise. The basis depends only on the dimension,
// so data and queries drawn with different seeds share the clusters.
std::vector<std::vector<float>> clustered(size_t count, int dimension, unsigned seed) {
    constexpr int kClusters = 20, kLatent = 6;
    std::mt19937 basis_rng(1234);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<std::vector<float>> centres(kClusters, std::vector<float>(dimension));
    std::vector<std::vector<float>> directions(kClusters * kLatent, std::vector<float>(dimension));
    for (auto& c : centres)
        for (auto& v : c) v = normal(basis_rng) * 3.0f;
    for (auto& d : directions)
        for (auto& v : d) v = normal(basis_rng);
    std::mt19937 rng(seed);
    std::vector<std::vector<float>> out(count, std::vector<float>(dimension));
    for (size_t i = 0; i < count; ++i) {
        const size_t cluster = i % kClusters;
        out[i] = centres[cluster];
        for (int l = 0; l < kLatent; ++l) {
            const float weight = normal(rng);
            for (int d = 0; d < dimension; ++d) out[i][d] += weight * directions[cluster * kLatent + l][d];
        }
        for (int d = 0; d < dimension; ++d) out[i][d] += 0.1f * normal(rng);
    }
    return out;
}

double recall_at_k(const VectorIndex& approximate, const VectorIndex& exact, const std::vector<std::vector<float>>& queries, int k) {
    size_t found = 0, total = 0;
    for (const auto& q : queries) {
        std::set<int64_t> truth;
        for (const auto& n : exact.search(q.data(), {k, 0})) truth.insert(n.id);
        for (const auto& n : approximate.search(q.data(), {k, 0})) found += truth.count(n.id);
        total += truth.size();
    }
    return double(found) / double(total);
}

void flip_byte(const std::filesystem::path& path, std::streamoff offset) {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(offset);
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x5A);
    f.seekp(offset);
    f.write(&c, 1);
}

}  // namespace

TEST_CASE("index: HNSW recall@10 against flat search on 5000 clustered vectors") {
    const auto data = clustered(5000, 64, 1);
    const auto queries = clustered(200, 64, 2);
    // Not ip: HNSW is built for metrics, and maximum inner product on unnormalised vectors is not
    // one; the README steers users to cosine.
    for (Metric metric : {Metric::L2, Metric::Cosine}) {
        CAPTURE(metric_name(metric));
        FlatIndex flat(64, metric);
        HnswIndex hnsw(64, metric, IndexSpec{}, 100);  // starts small: add() must grow it
        for (size_t i = 0; i < data.size(); ++i) {
            flat.add(int64_t(i + 1), data[i].data());
            hnsw.add(int64_t(i + 1), data[i].data());
        }
        CHECK(hnsw.size() == 5000);
        CHECK(recall_at_k(hnsw, flat, queries, 10) >= 0.95);
    }
}

TEST_CASE("index: flat search is exact, ordered, and replaces re-added ids") {
    FlatIndex flat(2, Metric::L2);
    const float a[2] = {0, 0}, b[2] = {3, 4}, c[2] = {1, 0};
    flat.add(1, a);
    flat.add(2, b);
    flat.add(3, c);
    const float q[2] = {0, 0};
    auto hits = flat.search(q, {3, 0});
    REQUIRE(hits.size() == 3);
    CHECK(hits[0].id == 1);
    CHECK(hits[1].id == 3);
    CHECK(hits[2].distance == doctest::Approx(25.0));
    const float moved[2] = {0.5f, 0};
    flat.add(2, moved);
    CHECK(flat.size() == 3);
    CHECK(flat.search(q, {1, 0})[0].id == 1);
    CHECK(flat.search(q, {2, 0})[1].id == 2);
}

TEST_CASE("index: the HNSW file round-trips and every kind of damage is detected") {
    test::TempDir dir;
    const auto file = dir.path() / "index.hnsw";
    const auto data = clustered(500, 32, 3);
    const VectorFetcher fetch = [&](const std::vector<int64_t>& ids, std::vector<float>& out) {
        out.clear();
        for (int64_t id : ids) out.insert(out.end(), data[size_t(id - 10)].begin(), data[size_t(id - 10)].end());
    };
    GroupedIndex hnsw(std::make_unique<HnswIndex>(32, Metric::Cosine, IndexSpec{}, 500), fetch);
    for (size_t i = 0; i < data.size(); ++i) hnsw.add(int64_t(i + 10), data[i].data());
    const CatalogueState built_from{"0123456789abcdef0123456789abcdef", 42, "fedcba9876543210fedcba9876543210"};
    hnsw.save(file, built_from);

    IndexFileHeader header;
    auto loaded = GroupedIndex::load(file, IndexSpec{}, fetch, header, IndexFileHolding::Mapped);
    CHECK(header.kind == "hnsw");
    CHECK(header.count == 500);
    CHECK(header.built_from.generation == 42);
    CHECK(header.built_from.store_id == built_from.store_id);
    CHECK(header.built_from.token == built_from.token);
    CHECK(header.metric == Metric::Cosine);
    CHECK(header.params[0] == uint32_t(IndexSpec{}.hnsw_m));
    for (size_t i = 0; i < 50; ++i) {
        const auto before = hnsw.search(data[i].data(), {10, 0});
        const auto after = loaded->search(data[i].data(), {10, 0});
        REQUIRE(before.size() == after.size());
        for (size_t r = 0; r < before.size(); ++r) CHECK(before[r].id == after[r].id);
    }

    const auto size = std::filesystem::file_size(file);
    SUBCASE("truncated") {
        std::filesystem::resize_file(file, size - 7);
        CHECK_THROWS_AS(GroupedIndex::load(file, IndexSpec{}, fetch, header, IndexFileHolding::Mapped), IndexFileError);
    }
    SUBCASE("a flipped byte in the graph") {
        // Opening checks the header and checksum table; the records are checked as searches reach
        // them (test_mapped_index.cpp has every region).
        flip_byte(file, std::streamoff(size / 2));
        auto damaged = GroupedIndex::load(file, IndexSpec{}, fetch, header, IndexFileHolding::Mapped);
        CHECK_THROWS_WITH_AS(damaged->search(data[0].data(), {500, 500}), doctest::Contains("checksum"), IndexFileError);
    }
    SUBCASE("a foreign file") {
        std::ofstream(file, std::ios::trunc) << "SQLite format 3, or anything else that is not ours" << std::string(200, 'x');
        CHECK_THROWS_WITH_AS(GroupedIndex::load(file, IndexSpec{}, fetch, header, IndexFileHolding::Mapped), doctest::Contains("not a cbir index"), IndexFileError);
    }
    SUBCASE("a newer format version") {
        flip_byte(file, 8);  // the low byte of the version: 3 ^ 0x5A
        CHECK_THROWS_WITH_AS(GroupedIndex::load(file, IndexSpec{}, fetch, header, IndexFileHolding::Mapped), doctest::Contains("newer"), IndexFileError);
    }
    SUBCASE("a file shorter than the header") {
        std::ofstream(file, std::ios::trunc) << "CBIRANN";
        CHECK_THROWS_WITH_AS(GroupedIndex::load(file, IndexSpec{}, fetch, header, IndexFileHolding::Mapped), doctest::Contains("too short"), IndexFileError);
    }
    SUBCASE("a missing file") {
        std::filesystem::remove(file);
        CHECK_THROWS_AS(GroupedIndex::load(file, IndexSpec{}, fetch, header, IndexFileHolding::Mapped), IndexFileError);
    }
    SUBCASE("no temporary file is left behind by a save") {
        size_t entries = 0;
        for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) ++entries;
        CHECK(entries == 1);
    }
}

TEST_CASE("index: on the seed photos' reference features HNSW gives exactly the flat results") {
    const auto features = test::reference_seed_features();
    FlatIndex flat(512, Metric::L2);
    HnswIndex hnsw(512, Metric::L2, IndexSpec{}, 7);
    int64_t id = 1;
    for (const auto& [name, f] : features) {
        flat.add(id, f.data());
        hnsw.add(id, f.data());
        ++id;
    }
    for (const auto& [name, f] : features) {
        const auto a = flat.search(f.data(), {7, 0});
        const auto b = hnsw.search(f.data(), {7, 0});
        REQUIRE(a.size() == 7);
        REQUIRE(b.size() == 7);
        for (size_t r = 0; r < 7; ++r) {
            CHECK(a[r].id == b[r].id);
            CHECK(a[r].distance == doctest::Approx(b[r].distance).epsilon(1e-4));
        }
    }
}
