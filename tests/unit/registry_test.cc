// The registry client's parsing of what users type and registries send:
// image references, WWW-Authenticate challenges, stored credentials.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "common/fs.h"
#include "registry/auth.h"
#include "registry/remote_ref.h"

namespace isola {
namespace {

TEST(RemoteRef, ShortNamesAreDockerHubLibrary) {
  auto r = RemoteRef::parse("busybox");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->registry, "docker.io");
  EXPECT_EQ(r->path, "library/busybox");
  EXPECT_EQ(r->tag, "latest");
  EXPECT_EQ(r->api_host(), "registry-1.docker.io");
  EXPECT_EQ(r->local_tag(), "busybox:latest");
  EXPECT_EQ(r->str(), "docker.io/library/busybox:latest");
}

TEST(RemoteRef, UserRepositoriesAndExplicitHub) {
  auto r = RemoteRef::parse("docker.io/someone/app:v2");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->path, "someone/app");
  EXPECT_EQ(r->local_tag(), "someone/app:v2");
  auto lib = RemoteRef::parse("docker.io/library/alpine");
  ASSERT_TRUE(lib);
  EXPECT_EQ(lib->local_tag(), "alpine:latest");
}

TEST(RemoteRef, HubPathsThatLookLikeHostsKeepTheirHub) {
  auto r = RemoteRef::parse("docker.io/quay.io/x:v1");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->registry, "docker.io");
  EXPECT_EQ(r->path, "quay.io/x");
  EXPECT_EQ(r->local_tag(), "docker.io/quay.io/x:v1");
  auto again = RemoteRef::parse(r->local_tag());
  ASSERT_TRUE(again);
  EXPECT_EQ(again->registry, "docker.io");
  EXPECT_EQ(again->path, "quay.io/x");
}

TEST(RemoteRef, HostWithPortAndDigest) {
  std::string digest = "sha256:" + std::string(64, 'a');
  auto r = RemoteRef::parse("127.0.0.1:5000/team/app@" + digest);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->registry, "127.0.0.1:5000");
  EXPECT_EQ(r->path, "team/app");
  EXPECT_EQ(r->tag, "");
  EXPECT_EQ(r->reference(), digest);
  EXPECT_EQ(r->local_tag(), "");
  auto both = RemoteRef::parse("localhost/app:v1@" + digest);
  ASSERT_TRUE(both);
  EXPECT_EQ(both->tag, "v1");
  EXPECT_EQ(both->reference(), digest);
}

TEST(RemoteRef, RefusesBadInput) {
  EXPECT_FALSE(RemoteRef::parse("app@sha256:xyz"));
  EXPECT_FALSE(RemoteRef::parse("app@md5:" + std::string(32, 'a')));
  EXPECT_FALSE(RemoteRef::parse("UPPER/case"));
  EXPECT_FALSE(RemoteRef::parse(""));
}

TEST(RemoteRef, LoopbackRegistries) {
  EXPECT_TRUE(is_loopback_registry("localhost:5000"));
  EXPECT_TRUE(is_loopback_registry("127.0.0.1"));
  EXPECT_TRUE(is_loopback_registry("127.1.2.3:443"));
  EXPECT_TRUE(is_loopback_registry("[::1]:5000"));
  EXPECT_FALSE(is_loopback_registry("registry.example.com"));
  EXPECT_FALSE(is_loopback_registry("127.example.com:5000"));
}

TEST(Challenge, BearerWithQuotedParameters) {
  auto c = parse_challenge(
      R"(Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull")");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->scheme, "bearer");
  EXPECT_EQ(c->params["realm"], "https://auth.example.com/token");
  EXPECT_EQ(c->params["service"], "registry.example.com");
  EXPECT_EQ(c->params["scope"], "repository:a/b:pull");
}

TEST(Challenge, BasicEscapesAndTokens) {
  auto c = parse_challenge(R"(Basic Realm="a \"quoted\" realm", charset=UTF-8)");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->scheme, "basic");
  EXPECT_EQ(c->params["realm"], "a \"quoted\" realm");
  EXPECT_EQ(c->params["charset"], "UTF-8");
}

TEST(Challenge, MalformedIsRefused) {
  EXPECT_FALSE(parse_challenge(""));
  EXPECT_FALSE(parse_challenge("   "));
  EXPECT_FALSE(parse_challenge(R"(Bearer realm="unterminated)"));
  EXPECT_FALSE(parse_challenge(std::string(10000, 'a')));
}

TEST(Base64, RoundTrips) {
  for (std::string s : std::vector<std::string>{"", "a", "ab", "abc", "user:p@ss:word", std::string("\0\xff\x10", 3)}) {
    auto back = base64_decode(base64_encode(s));
    ASSERT_TRUE(back) << s;
    EXPECT_EQ(*back, s);
  }
  EXPECT_EQ(base64_encode("alice:pw"), "YWxpY2U6cHc=");
  EXPECT_FALSE(base64_decode("abc"));
  EXPECT_FALSE(base64_decode("a*c="));
  EXPECT_FALSE(base64_decode("ab\t\t"));
  EXPECT_FALSE(base64_decode("===="));
}

TEST(CredentialStore, StoresPrivatelyAndForgets) {
  std::string dir = *make_temp_dir("/tmp", "isola-auth-test-");
  CredentialStore store(dir + "/root/auth.json");
  auto none = store.get("r.example.com");
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());
  ASSERT_TRUE(store.put("r.example.com", {"alice", "secret:with:colons"}));
  struct stat st;
  ASSERT_EQ(::stat((dir + "/root/auth.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto got = store.get("r.example.com");
  ASSERT_TRUE(got && got->has_value());
  EXPECT_EQ((*got)->username, "alice");
  EXPECT_EQ((*got)->password, "secret:with:colons");
  EXPECT_TRUE(*store.remove("r.example.com"));
  EXPECT_FALSE(*store.remove("r.example.com"));
  (void)remove_tree(dir);
}

TEST(Credentials, ParseCreds) {
  auto c = parse_creds("bob:pa:ss");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->username, "bob");
  EXPECT_EQ(c->password, "pa:ss");
  EXPECT_FALSE(parse_creds("nocolon"));
  EXPECT_FALSE(parse_creds(":pw"));
}

}  // namespace
}  // namespace isola
