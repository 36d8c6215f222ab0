// Features computed by cbir must be those of the reference PyTorch pipeline (PIL preprocessing).
#include <doctest/doctest.h>

#include <fstream>
#include <iterator>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "embed/embedder.h"
#include "image/decode.h"
#include "pipeline/prepare.h"
#include "test_support.h"

using namespace cbir;

namespace {

Embedder& shared_embedder() {
    static std::unique_ptr<Embedder> embedder = Embedder::load(test::untrained_model(), EmbedderOptions{});
    return *embedder;
}

std::vector<float> embed_file(const std::filesystem::path& path) {
    PreparedImage prepared = prepare_image(path, PreprocessSpec{});
    REQUIRE_MESSAGE(prepared.ok(), prepared.error);
    return shared_embedder().embed(prepared.input.data(), 1);
}

double squared_l2(const std::vector<float>& a, const std::vector<float>& b) {
    double s = 0;
    for (size_t i = 0; i < a.size(); ++i) s += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    return s;
}

}  // namespace

TEST_CASE("features: each seed photo within 0.5% relative L2 of the PyTorch reference") {
    const auto reference = test::reference_seed_features();
    REQUIRE(reference.size() == 7);
    CHECK(shared_embedder().dimension() == 512);
    for (const auto& [name, expected] : reference) {
        CAPTURE(name);
        const auto features = embed_file(test::seed_dir() / (name + ".jpg"));
        REQUIRE(features.size() == 512);
        CHECK(test::relative_l2_error(features, expected) < 0.005);
    }
}

TEST_CASE("features: dog1's squared L2 distances match the reference table within 0.5%") {
    const std::map<std::string, double> expected = {{"cat2", 12.340010}, {"dog2", 16.145108}, {"person1", 27.190037},
                                                    {"cat1", 28.725008}, {"dog3", 30.279948}, {"person2", 35.523511}};
    const auto dog1 = embed_file(test::seed_dir() / "dog1.jpg");
    for (const auto& [name, distance] : expected) {
        CAPTURE(name);
        const double d = squared_l2(dog1, embed_file(test::seed_dir() / (name + ".jpg")));
        CHECK(std::abs(d - distance) / distance < 0.005);
    }
}

TEST_CASE("features: batching does not change the vectors") {
    std::vector<float> batch;
    std::vector<std::vector<float>> singles;
    for (const char* name : {"dog1", "cat1", "person2"}) {
        PreparedImage p = prepare_image(test::seed_dir() / (std::string(name) + ".jpg"), PreprocessSpec{});
        batch.insert(batch.end(), p.input.begin(), p.input.end());
        singles.push_back(shared_embedder().embed(p.input.data(), 1));
    }
    const auto together = shared_embedder().embed(batch.data(), 3);
    for (size_t i = 0; i < 3; ++i) {
        std::vector<float> row(together.begin() + long(i * 512), together.begin() + long((i + 1) * 512));
        CHECK(test::relative_l2_error(row, singles[i]) < 1e-4);
    }
}

TEST_CASE("features: OpenCV's own resize modes drift further from the reference than the Pillow-exact resize") {
    // Why lib/image/pil_resize.cpp exists: the cheaper OpenCV resizes do not reproduce the notebook.
    const auto reference = test::reference_seed_features();
    const PreprocessSpec spec;
    const auto dog3 = test::seed_dir() / "dog3.jpg";  // 2000x1333: a strong downscale shows the difference
    const double ours = test::relative_l2_error(embed_file(dog3), reference.at("dog3"));
    cv::Mat rgb = decode_image_bytes([&] {
        std::ifstream in(dog3, std::ios::binary);
        return std::string(std::istreambuf_iterator<char>(in), {});
    }()).rgb;
    for (int mode : {cv::INTER_LINEAR, cv::INTER_AREA}) {
        cv::Mat resized;
        cv::resize(rgb, resized, cv::Size(224, 224), 0, 0, mode);
        std::vector<float> input(spec.values_per_image());
        preprocess_rgb(resized, spec, input.data());  // already 224x224: the Pillow pass is a no-op
        const double theirs = test::relative_l2_error(shared_embedder().embed(input.data(), 1), reference.at("dog3"));
        CAPTURE(mode);
        CHECK(theirs > ours);
        MESSAGE("dog3 relative error: pillow-exact " << ours << ", OpenCV mode " << mode << " " << theirs);
    }
}
