"""Address policy, selector profiles, politeness and option validation: no network, no browser."""

from __future__ import annotations

import ipaddress
import json

import pytest

from scraping.options import CrawlOptions, OptionsError
from scraping.politeness import HostThrottle
from scraping.profiles import ProfileError, load_profiles, parse_profiles, profile_for
from scraping.robots import user_agent_token
from scraping.safety import AddressPolicy, UnsafeURL, check_url_syntax


class TestAddressPolicy:
    @pytest.mark.parametrize(
        ("address", "words"),
        [
            ("127.0.0.1", "loopback"),
            ("10.1.2.3", "private"),
            ("192.168.0.10", "private"),
            ("172.16.5.4", "private"),
            ("169.254.169.254", "link-local"),
            ("::1", "loopback"),
            ("fe80::1", "link-local"),
            ("fd00::1", "private"),
            ("::ffff:10.0.0.1", "private"),
            ("0.0.0.0", "unspecified"),
            ("100.64.0.1", "reserved"),
        ],
    )
    def test_non_public_addresses_are_refused(self, address, words):
        with pytest.raises(UnsafeURL, match=words):
            AddressPolicy().check_ip(ipaddress.ip_address(address))

    def test_public_address_passes(self):
        AddressPolicy().check_ip(ipaddress.ip_address("93.184.216.34"))

    def test_allowed_network_and_allow_all(self):
        policy = AddressPolicy.build(allow_private=False, allowed_networks=["127.0.0.0/8"])
        policy.check_ip(ipaddress.ip_address("127.0.0.2"))
        with pytest.raises(UnsafeURL):
            policy.check_ip(ipaddress.ip_address("10.0.0.1"))
        AddressPolicy.build(allow_private=True, allowed_networks=[]).check_ip(ipaddress.ip_address("10.0.0.1"))

    def test_bad_network_setting(self):
        with pytest.raises(ValueError, match="CRAWL_ALLOWED_NETWORKS"):
            AddressPolicy.build(allow_private=False, allowed_networks=["localhost"])

    def test_urls_naming_private_ips_are_refused_before_any_connection(self):
        for url in ("http://10.0.0.1/", "http://[::1]:8000/x", "http://localhost/", "http://169.254.169.254/latest"):
            with pytest.raises(UnsafeURL, match="refused"):
                AddressPolicy().check_url(url)

    @pytest.mark.parametrize(
        "url",
        [
            "ftp://shop.example/x",
            "file:///etc/passwd",
            "javascript:alert(1)",
            "http:///nohost",
            "http://u:p@shop.example/",
        ],
    )
    def test_only_plain_http_urls(self, url):
        with pytest.raises(UnsafeURL):
            check_url_syntax(url)

    def test_unresolvable_host(self):
        with pytest.raises(UnsafeURL, match="cannot resolve"):
            AddressPolicy().check_url("http://no-such-host.invalid/")


class TestProfiles:
    def test_load_and_match(self, tmp_path):
        path = tmp_path / "profiles.json"
        path.write_text(
            json.dumps(
                {
                    "profiles": [
                        {"name": "a", "hosts": ["*.shop.example"], "url_pattern": "/p/", "fields": {"name": "h1"}},
                        {"name": "b", "hosts": ["shop.example:8080"], "product_links": "a.card"},
                    ]
                }
            )
        )
        profiles = load_profiles(path)
        assert profile_for("https://www.shop.example/p/1", profiles).name == "a"
        assert profile_for("https://www.shop.example/about", profiles) is None
        assert profile_for("http://shop.example:8080/x", profiles).product_links == "a.card"
        assert profile_for("https://elsewhere.example/p/1", profiles) is None

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            ({"profiles": [{"name": "x", "hosts": []}]}, "hosts"),
            ({"profiles": [{"name": "x", "hosts": ["a"], "fields": {"nmae": "h1"}}]}, "unknown field"),
            ({"profiles": [{"name": "x", "hosts": ["a"], "fields": {"name": "h1[["}}]}, "invalid CSS selector"),
            ({"profiles": [{"name": "x", "hosts": ["a"], "url_pattern": "("}]}, "url_pattern"),
            ({"profiles": [{"name": "x", "hosts": ["a"], "colour": "h1"}]}, "unknown key"),
            ({"nope": []}, "profiles"),
        ],
    )
    def test_bad_profiles_are_explained(self, data, message):
        with pytest.raises(ProfileError, match=message):
            parse_profiles(data, source="test.json")

    def test_missing_file_and_bad_json(self, tmp_path):
        with pytest.raises(ProfileError, match="does not exist"):
            load_profiles(tmp_path / "missing.json")
        broken = tmp_path / "broken.json"
        broken.write_text("{")
        with pytest.raises(ProfileError, match="not valid JSON"):
            load_profiles(broken)
        assert load_profiles("") == []

    def test_shipped_profiles_file_is_valid(self, settings):
        assert load_profiles(settings.CRAWL_PROFILES_FILE)


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(round(seconds, 3))
        self.now += seconds


def test_throttle_spaces_requests_per_host():
    fake = FakeClock()
    throttle = HostThrottle(delay=2.0, clock=fake.clock, sleep=fake.sleep)
    for _ in range(3):
        with throttle.request("a.example"):
            pass
    with throttle.request("b.example"):
        pass
    assert fake.sleeps == [2.0, 2.0]  # b.example did not wait for a.example
    throttle.set_host_delay("a.example", 5)
    with throttle.request("a.example"):
        pass
    throttle.set_host_delay("a.example", 0.5)  # never below the run's delay
    with throttle.request("a.example"):
        pass
    assert fake.sleeps[-2:] == [2.0, 5.0]


def test_user_agent_token():
    assert user_agent_token("LookalikeBot/0.1 (+https://github.com/lookalike)") == "LookalikeBot"


class TestOptions:
    def test_defaults_come_from_settings(self, settings):
        settings.CRAWL_CONCURRENCY = 3
        settings.CRAWL_DELAY_SECONDS = 0.5
        options = CrawlOptions.build()
        assert (options.concurrency, options.host_concurrency, options.delay, options.follow) == (3, 3, 0.5, False)
        assert options.user_options()["concurrency"] == 3
        assert "allow_private" not in options.user_options()

    @pytest.mark.parametrize(
        ("given", "message"),
        [
            ({"concurrency": 0}, "concurrency"),
            ({"concurrency": 99}, "concurrency"),
            ({"max_pages": 10**9}, "CRAWL_MAX_PAGES"),
            ({"delay": -1}, "delay"),
            ({"delay": "soon"}, "delay"),
            ({"link_selector": "a[["}, "CSS selector"),
            ({"max_depth": 2.5}, "whole number"),
            ({"allow_private": True}, "unknown"),
        ],
    )
    def test_bad_options(self, given, message):
        with pytest.raises(OptionsError, match=message):
            CrawlOptions.build(**given)
