// TLS verification is on by default in the curl client: a local HTTPS server
// (Beast + OpenSSL) with a certificate made at test time is refused unless
// CurlOptions::ca_bundle names its CA, and even then only for the host names
// the certificate is for.

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "support/mini_server.hpp"
#include "webhookdb/curl/curl_http_client.hpp"
#include "webhookdb/errors.hpp"

namespace webhookdb::test {
namespace {

MiniResponse ok_json(const MiniRequest&) {
  return MiniResponse{200, {{"Content-Type", "application/json"}}, R"({"tls":"ok"})", {}};
}

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/webhookdb-tls.XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  std::string write(const std::string& name, const std::string& text) const {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }
  static HttpResponse get(const curl::CurlOptions& options, const std::string& url) {
    curl::CurlHttpClient client(options);
    HttpRequest request;
    request.url = url;
    request.timeout = std::chrono::seconds(10);
    return client.send(request);
  }
  // The error a GET ends with; fails the test when it succeeds.
  static std::string refused(const curl::CurlOptions& options, const std::string& url) {
    try {
      (void)get(options, url);
    } catch (const HttpConnectionError& e) {
      return e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "expected HttpConnectionError, got: " << e.what();
      return {};
    }
    ADD_FAILURE() << "the request to " << url << " succeeded without a trusted certificate";
    return {};
  }

  std::string dir_;
};

TEST_F(TlsTest, VerificationIsOnByDefault) {
  const curl::CurlOptions defaults;
  EXPECT_TRUE(defaults.verify_tls);
  EXPECT_TRUE(defaults.ca_bundle.empty());
}

TEST_F(TlsTest, ASelfSignedCertificateIsRefusedUnlessItIsTheConfiguredCa) {
  const Pem self_signed = make_certificate("127.0.0.1", "IP:127.0.0.1", nullptr, true);
  MiniServer server(ok_json, &self_signed);
  const std::string url = server.url("/v1/things?api_key=sk_tls_SECRET");

  // Default options: the system's CAs do not include it.
  const std::string message = refused(curl::CurlOptions{}, url);
  EXPECT_NE(message.find("127.0.0.1"), std::string::npos) << message;
  EXPECT_EQ(message.find("sk_tls_SECRET"), std::string::npos) << message;
  // The server sees the refused handshake on its own thread, perhaps just
  // after the client has given up: wait for it (bounded).
  for (int i = 0; i < 500 && server.failed_handshakes() < 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_GE(server.failed_handshakes(), 1);
  EXPECT_TRUE(server.requests().empty()) << "no request may be sent over an unverified connection";

  // Trusting another CA does not help.
  const Pem other = make_certificate("other CA", "", nullptr, true);
  curl::CurlOptions wrong_ca;
  wrong_ca.ca_bundle = write("other.pem", other.certificate);
  (void)refused(wrong_ca, url);
  EXPECT_TRUE(server.requests().empty());

  // Trusting exactly this certificate does.
  curl::CurlOptions trusted;
  trusted.ca_bundle = write("self.pem", self_signed.certificate);
  const HttpResponse response = get(trusted, url);
  EXPECT_EQ(response.status, 200);
  EXPECT_EQ(response.body, R"({"tls":"ok"})");
  ASSERT_EQ(server.requests().size(), 1U);
  EXPECT_EQ(server.requests()[0].target, "/v1/things?api_key=sk_tls_SECRET");
}

TEST_F(TlsTest, ACaSignedCertificateIsCheckedForTheHostName) {
  const Pem ca = make_certificate("webhookdb test CA", "", nullptr, true);
  const Pem right = make_certificate("127.0.0.1", "IP:127.0.0.1", &ca, false);
  const Pem wrong_host = make_certificate("api.example.test", "DNS:api.example.test", &ca, false);
  curl::CurlOptions trusted;
  trusted.ca_bundle = write("ca.pem", ca.certificate);

  MiniServer good(ok_json, &right);
  EXPECT_EQ(get(trusted, good.url("/")).status, 200);
  (void)refused(curl::CurlOptions{}, good.url("/"));

  // Signed by the trusted CA but for another name: refused.
  MiniServer impostor(ok_json, &wrong_host);
  const std::string message = refused(trusted, impostor.url("/"));
  EXPECT_FALSE(message.empty());
  EXPECT_TRUE(impostor.requests().empty());

  // The directory form (CurlOptions::ca_path) is not set by default either:
  // only an explicit opt-out turns verification off.
  curl::CurlOptions insecure;
  insecure.verify_tls = false;
  EXPECT_EQ(get(insecure, impostor.url("/")).status, 200);
}

TEST_F(TlsTest, AnExpiredCertificateIsRefusedEvenFromTheConfiguredCa) {
  // Expired: made valid, then checked by a client whose CA is right. We
  // cannot move the client's clock, so sign a certificate whose validity
  // ended an hour ago.
  const Pem ca = make_certificate("webhookdb test CA", "", nullptr, true);
  Pem leaf = make_certificate("127.0.0.1", "IP:127.0.0.1", &ca, false);
  {
    BIO* cb = BIO_new_mem_buf(leaf.certificate.data(), static_cast<int>(leaf.certificate.size()));
    X509* cert = PEM_read_bio_X509(cb, nullptr, nullptr, nullptr);
    BIO_free(cb);
    BIO* kb = BIO_new_mem_buf(ca.private_key.data(), static_cast<int>(ca.private_key.size()));
    EVP_PKEY* ca_key = PEM_read_bio_PrivateKey(kb, nullptr, nullptr, nullptr);
    BIO_free(kb);
    ASSERT_TRUE(cert != nullptr && ca_key != nullptr);
    X509_gmtime_adj(X509_getm_notBefore(cert), -7200);
    X509_gmtime_adj(X509_getm_notAfter(cert), -3600);
    ASSERT_GT(X509_sign(cert, ca_key, EVP_sha256()), 0);
    BIO* out = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(out, cert);
    leaf.certificate = detail::bio_string(out);
    BIO_free(out);
    X509_free(cert);
    EVP_PKEY_free(ca_key);
  }
  MiniServer expired(ok_json, &leaf);
  curl::CurlOptions trusted;
  trusted.ca_bundle = write("ca.pem", ca.certificate);
  (void)refused(trusted, expired.url("/"));
  EXPECT_TRUE(expired.requests().empty());
}

}  // namespace
}  // namespace webhookdb::test
