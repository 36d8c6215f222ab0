// The resize must reproduce Pillow's antialiased bilinear resize, which the reference notebook uses.
#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <random>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "image/pil_resize.h"
#include "test_support.h"

using namespace cbir;

TEST_CASE("resize: a 4-pixel row halves to the triangle-filter averages Pillow computes") {
    // Downscale by 2: support 2, weights (0.75, 0.75, 0.25)/1.75 -> 71 and 209.
    cv::Mat row(1, 4, CV_8UC3);
    const uint8_t values[4] = {0, 100, 200, 255};
    for (int x = 0; x < 4; ++x) row.at<cv::Vec3b>(0, x) = cv::Vec3b(values[x], values[x], values[x]);
    const cv::Mat out = resize_like_pil_bilinear(row, 2, 1);
    CHECK(int(out.at<cv::Vec3b>(0, 0)[0]) == 71);
    CHECK(int(out.at<cv::Vec3b>(0, 1)[0]) == 209);
}

TEST_CASE("resize: a constant image stays constant at any size") {
    cv::Mat flat(313, 97, CV_8UC3, cv::Scalar(17, 128, 250));
    for (auto size : {cv::Size(224, 224), cv::Size(1000, 5), cv::Size(1, 1)}) {
        const cv::Mat out = resize_like_pil_bilinear(flat, size.width, size.height);
        REQUIRE(out.size() == size);
        cv::Mat diff;
        cv::absdiff(out, cv::Scalar(17, 128, 250), diff);
        CHECK(cv::norm(diff, cv::NORM_INF) == 0);
    }
}

TEST_CASE("resize: bit-identical to Pillow's Image.resize(BILINEAR) on random images") {
    test::TempDir dir;
    std::mt19937 rng(42);
    // Photo sizes too: the AVX2 pass reads whole 8-pixel groups, so wide windows and ragged row ends count.
    const std::vector<cv::Size> sizes = {{37, 23}, {1000, 333}, {3, 500}, {640, 480}, {225, 224}, {3000, 2000}, {4001, 2999}};
    std::ofstream script(dir.path() / "resize.py");
    script << "import sys\nfrom PIL import Image\n"
              "for i in range(" << sizes.size() << "):\n"
              "    Image.open(sys.argv[1] + '/in%d.png' % i).convert('RGB').resize((224, 224), Image.BILINEAR)"
              ".save(sys.argv[1] + '/pil%d.png' % i)\n";
    script.close();
    std::vector<cv::Mat> inputs;
    for (size_t i = 0; i < sizes.size(); ++i) {
        cv::Mat image(sizes[i], CV_8UC3);
        cv::randu(image, 0, 256);
        cv::GaussianBlur(image, image, cv::Size(3, 3), 0);  // photo-like: neighbours correlate
        cv::imwrite((dir.path() / ("in" + std::to_string(i) + ".png")).string(), image);  // PNG: lossless
        inputs.push_back(image);
    }
    const std::string command = "/usr/bin/python3 " + (dir.path() / "resize.py").string() + " " + dir.path().string();
    REQUIRE_MESSAGE(std::system(command.c_str()) == 0, "needs Debian's python3-pil (scripts/install-deps.sh)");
    for (size_t i = 0; i < sizes.size(); ++i) {
        CAPTURE(sizes[i]);
        // imwrite/imread both use BGR, so channel order round-trips; Pillow saw the same bytes.
        const cv::Mat pil = cv::imread((dir.path() / ("pil" + std::to_string(i) + ".png")).string(), cv::IMREAD_COLOR);
        const cv::Mat ours = resize_like_pil_bilinear(inputs[i], 224, 224);
        cv::Mat diff;
        cv::absdiff(pil, ours, diff);
        CHECK(cv::norm(diff, cv::NORM_INF) == 0);
    }
}
