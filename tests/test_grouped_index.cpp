// Identical vectors grouped under one ANN entry: as many copies as a library may hold, against the
// exact search, through additions, replacements, removals and a save and load.
#include <doctest/doctest.h>

#include <map>
#include <random>
#include <set>

#include "index/flat_index.h"
#include "index/grouped_index.h"
#include "index/hnsw_index.h"
#include "index/ivf_index.h"
#include "test_support.h"

using namespace cbir;

namespace {

constexpr int kDimension = 32;

// A stand-in catalogue: the vectors of live rows, as the real fetcher reads them.
struct Rows {
    std::map<int64_t, std::vector<float>> vectors;
    VectorFetcher fetcher() {
        return [this](const std::vector<int64_t>& ids, std::vector<float>& out) {
            out.assign(ids.size() * kDimension, std::numeric_limits<float>::quiet_NaN());
            for (size_t i = 0; i < ids.size(); ++i)
                if (auto found = vectors.find(ids[i]); found != vectors.end())
                    std::copy(found->second.begin(), found->second.end(), out.begin() + long(i * kDimension));
        };
    }
};

std::vector<float> random_vector(std::mt19937& rng) {
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> v(kDimension);
    for (auto& x : v) x = normal(rng);
    return v;
}

// Top-10 recall of `index` against an exact search over the same live rows, for 200 queries near
// the stored vectors (half of them near the copied one).
double recall(const VectorIndex& index, const Rows& rows, const std::vector<float>& copied, std::mt19937& rng) {
    FlatIndex exact(kDimension, Metric::L2);
    for (const auto& [id, v] : rows.vectors) exact.add(id, v.data());
    std::normal_distribution<float> noise(0.0f, 0.3f);
    size_t found = 0, total = 0;
    auto it = rows.vectors.begin();
    for (int q = 0; q < 200; ++q) {
        std::vector<float> query = q % 2 ? copied : it->second;
        for (auto& x : query) x += noise(rng);
        if (++it == rows.vectors.end()) it = rows.vectors.begin();
        std::set<int64_t> truth;
        for (const auto& n : exact.search(query.data(), {10, 0})) truth.insert(n.id);
        for (const auto& n : index.search(query.data(), {10, 0})) found += truth.count(n.id);
        total += truth.size();
    }
    return double(found) / double(total);
}

}  // namespace

TEST_CASE("grouped index: thousands of identical vectors keep HNSW recall, through changes and a reload") {
    std::mt19937 rng(7);
    Rows rows;
    GroupedIndex index(std::make_unique<HnswIndex>(kDimension, Metric::L2, IndexSpec{}, 1000), rows.fetcher());
    std::vector<int64_t> ids;
    std::vector<float> vectors;
    int64_t next_id = 1;
    for (int i = 0; i < 1000; ++i) {
        auto v = random_vector(rng);
        rows.vectors[next_id] = v;
        ids.push_back(next_id++);
        vectors.insert(vectors.end(), v.begin(), v.end());
    }
    index.add_batch(ids.data(), vectors.data(), ids.size(), /*replace=*/false);
    const std::vector<float> copied = rows.vectors[500];
    for (int copies : {1000, 3000, 10000}) {
        ids.clear();
        vectors.clear();
        while (static_cast<int>(rows.vectors.size()) < 1000 + copies) {
            rows.vectors[next_id] = copied;
            ids.push_back(next_id++);
            vectors.insert(vectors.end(), copied.begin(), copied.end());
        }
        index.add_batch(ids.data(), vectors.data(), ids.size(), /*replace=*/false);
        CHECK(index.size() == rows.vectors.size());
        CHECK(index.inner().size() == 1000);  // the copies share the photo's one node
        const double r = recall(index, rows, copied, rng);
        MESSAGE(copies << " copies: recall@10 " << r);
        CHECK(r >= 0.95);
    }

    // The search near the copies returns them in id order, as the exact search does.
    auto hits = index.search(copied.data(), {5, 0});
    REQUIRE(hits.size() == 5);
    CHECK(hits[0].id == 500);
    CHECK(hits[1].id == 1001);
    CHECK(hits[0].distance == 0.0f);

    SUBCASE("removing the row a group is stored under keeps the group findable") {
        index.remove({500});
        rows.vectors.erase(500);
        hits = index.search(copied.data(), {3, 0});
        REQUIRE(hits.size() == 3);
        CHECK(hits[0].id == 1001);
        CHECK(hits[0].distance == 0.0f);
        CHECK(index.size() == rows.vectors.size());
    }
    SUBCASE("a copy that changes leaves its group; a new copy joins it") {
        auto changed = random_vector(rng);
        rows.vectors[1001] = changed;
        index.add(1001, changed.data());
        CHECK(index.search(changed.data(), {1, 0})[0].id == 1001);
        rows.vectors[next_id] = copied;
        index.add(next_id, copied.data());
        CHECK(index.size() == rows.vectors.size());
        CHECK(index.inner().size() == 1001);
    }
    SUBCASE("the groups survive a save and a load") {
        test::TempDir dir;
        index.save(dir.path() / "index.hnsw", CatalogueState{"", 3, ""});
        IndexFileHeader header;
        auto loaded = GroupedIndex::load(dir.path() / "index.hnsw", IndexSpec{}, rows.fetcher(), header, IndexFileHolding::Mapped);
        CHECK(loaded->size() == rows.vectors.size());
        CHECK(loaded->group_count() == 1);
        CHECK(recall(*loaded, rows, copied, rng) >= 0.95);
        // A twin added after the load is found by a search of the loaded graph, not stored again.
        rows.vectors[next_id] = copied;
        loaded->add(next_id, copied.data());
        CHECK(loaded->inner().size() == 1000);
    }
    SUBCASE("removing every copy removes the group") {
        std::vector<int64_t> all;
        for (const auto& [id, v] : rows.vectors)
            if (v == copied) all.push_back(id);
        index.remove(all);
        for (int64_t id : all) rows.vectors.erase(id);
        CHECK(index.size() == 999);
        CHECK(index.group_count() == 0);
        for (const auto& n : index.search(copied.data(), {10, 0})) CHECK(rows.vectors.count(n.id) == 1);
    }
}

TEST_CASE("grouped index: identical vectors in an IVF index are one entry too") {
    std::mt19937 rng(11);
    Rows rows;
    IndexSpec spec;
    spec.kind = IndexKind::Ivf;
    spec.ivf_nlist = 16;
    auto ivf = std::make_unique<IvfIndex>(kDimension, Metric::L2, spec);
    std::vector<float> training;
    for (int i = 0; i < 1000; ++i) {
        rows.vectors[i + 1] = random_vector(rng);
        training.insert(training.end(), rows.vectors[i + 1].begin(), rows.vectors[i + 1].end());
    }
    ivf->train(training.data(), 1000);
    GroupedIndex index(std::move(ivf), rows.fetcher());
    std::vector<int64_t> ids;
    for (int i = 0; i < 1000; ++i) ids.push_back(i + 1);
    index.add_batch(ids.data(), training.data(), ids.size(), /*replace=*/false);
    const std::vector<float> copied = rows.vectors[7];
    for (int64_t id = 1001; id <= 4000; ++id) {  // one at a time, as a server takes uploads
        rows.vectors[id] = copied;
        index.add(id, copied.data());
    }
    CHECK(index.size() == 4000);
    CHECK(index.inner().size() == 1000);
    CHECK(recall(index, rows, copied, rng) >= 0.95);
}
