"""autobahn.js (the vendored autobahn-browser build) in headless Chromium against the WAMP
router: two pages and the server's Python component on one process, and a page on server A
calling a procedure registered on server B over Redis."""

from __future__ import annotations

import os
from typing import Any

from tests.browser.conftest import TIMEOUT_MS
from tests.wamp.test_cluster import router_process

# A page's session: window.session once joined; events land in window.events[topic].
CONNECT = """async (url) => {
  window.events = {};
  return await new Promise((resolve, reject) => {
    const connection = new autobahn.Connection({url, realm: "realm1", max_retries: 0});
    connection.onopen = (session) => { window.session = session; resolve(session.id); };
    connection.onclose = (reason) => { reject(new Error(reason)); return false; };
    connection.open();
  });
}"""
SUBSCRIBE = """async (topic) => {
  window.events[topic] = [];
  const keep = (args, kwargs) => window.events[topic].push([args, kwargs]);
  await window.session.subscribe(topic, keep);
}"""
REGISTER = """async (procedure) => {
  await window.session.register(procedure, (args) => args[0] + args[1]);
}"""
CALL = """async ([procedure, args]) => {
  for (let tries = 0; ; tries++) {
    try { return await window.session.call(procedure, args); }
    catch (error) {
      if (error.error !== "wamp.error.no_such_procedure" || tries > 200) throw error;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
}"""
PUBLISH = "([topic, args]) => window.session.publish(topic, args)"


def open_page(browser: Any, port: int) -> Any:
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"http://127.0.0.1:{port}/")
    assert page.evaluate("typeof autobahn.Connection") == "function", errors
    assert page.evaluate(CONNECT, f"ws://127.0.0.1:{port}/ws") > 0
    return page


def wait_for_event(page: Any, topic: str) -> Any:
    page.wait_for_function(f"window.events[{topic!r}].length > 0")
    return page.evaluate(f"window.events[{topic!r}][0]")


def test_two_pages_and_a_python_component(browser: Any, redis_url: str) -> None:
    with router_process(redis_url, f"wamp-{os.urandom(4).hex()}") as (port, process):
        first, second = open_page(browser, port), open_page(browser, port)
        first.evaluate(REGISTER, "com.page.add")
        first.evaluate(SUBSCRIBE, "com.chat")
        second.evaluate(SUBSCRIBE, "com.chat.seen")
        assert second.evaluate(CALL, ["com.page.add", [2, 3]]) == 5  # page to page
        assert first.evaluate(CALL, ["com.worker.pid", []]) == process.pid  # page to Python
        second.evaluate(PUBLISH, ["com.chat", ["hello"]])
        assert wait_for_event(first, "com.chat") == [["hello"], {}]  # page to page
        assert wait_for_event(second, "com.chat.seen") == [["hello"], {"pid": process.pid}]


def test_a_page_on_server_a_calls_a_procedure_on_server_b(browser: Any, redis_url: str) -> None:
    prefix = f"wamp-{os.urandom(4).hex()}"
    with (
        router_process(redis_url, prefix) as (port_a, process_a),
        router_process(redis_url, prefix) as (port_b, process_b),
    ):
        on_a, on_b = open_page(browser, port_a), open_page(browser, port_b)
        assert on_a.evaluate(CALL, [f"com.pid.{process_b.pid}", []]) == process_b.pid
        on_b.evaluate(REGISTER, "com.b.add")
        assert on_a.evaluate(CALL, ["com.b.add", [20, 22]]) == 42
        on_a.evaluate(SUBSCRIBE, "com.from.b")
        on_b.evaluate(SUBSCRIBE, "com.from.a")
        for _ in range(200):  # until each side's subscription has reached the other process
            on_b.evaluate(PUBLISH, ["com.from.b", [1]])
            on_a.evaluate(PUBLISH, ["com.from.a", [2]])
            crossed_to_a = on_a.evaluate("window.events['com.from.b'].length")
            if crossed_to_a and on_b.evaluate("window.events['com.from.a'].length"):
                break
            on_a.wait_for_timeout(25)
        assert wait_for_event(on_a, "com.from.b") == [[1], {}]
        assert wait_for_event(on_b, "com.from.a") == [[2], {}]
        assert process_a.pid != process_b.pid
