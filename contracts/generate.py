"""Generate the JSON Schema of every message, the AsyncAPI 3 document of every topic and the
OpenAPI document of every webhook and callback fengqiao sends.

Run `uv run python -m contracts.generate` after changing a model; a test fails while the
committed files differ from what the models generate.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from contracts.envelope import CloudEvent
from contracts.topics import TOPICS, Topic, dlq
from kit.webhook_docs import webhooks_document

HERE = Path(__file__).parent
SCHEMA_DIR = HERE / "schemas"
ASYNCAPI_PATH = HERE / "asyncapi.yaml"
WEBHOOKS_PATH = HERE / "webhooks.openapi.json"


def schema_for(topic: Topic) -> dict[str, Any]:
    model = topic.message
    if issubclass(model, CloudEvent):
        schema = model.json_schema()
    else:
        schema = model.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://fengqiao.example/schemas/{topic.name}.json", **schema}


def _channel_id(name: str) -> str:
    return name.replace(".", "_")


def asyncapi() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for topic in TOPICS:
        cid = _channel_id(topic.name)
        msg_name = topic.message.__name__
        messages[msg_name] = {
            "name": msg_name,
            "contentType": "application/cloudevents+json" if topic.is_cloudevent
            else "application/json",
            "payload": {"$ref": f"./schemas/{topic.name}.json"},
        }
        channels[cid] = {
            "address": topic.name,
            "description": topic.description + " Keyed by case id.",
            "messages": {msg_name: {"$ref": f"#/components/messages/{msg_name}"}},
        }
        channels[_channel_id(dlq(topic.name))] = {
            "address": dlq(topic.name),
            "description": f"Messages from {topic.name} that could not be processed; the "
            "original value and key, with the reason in the `fq-dlq-reason` header.",
        }
        operations[f"send_{cid}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{cid}"},
            "summary": f"Produced by {', '.join(topic.producers)}.",
        }
        operations[f"receive_{cid}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{cid}"},
            "summary": f"Consumed by {', '.join(topic.consumers)}.",
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "fengqiao case events",
            "version": "1.0.0",
            "description": "Case events of the fengqiao governance-centre routing platform. "
            "Every event is a CloudEvents 1.0 structured-mode JSON message.",
        },
        "defaultContentType": "application/cloudevents+json",
        "servers": {
            "embedded": {"host": "127.0.0.1:9092", "protocol": "kafka",
                         "description": "Tansu, the embedded default"},
            "production": {"host": "kafka:9092", "protocol": "kafka",
                           "description": "Apache Kafka (KRaft) from deploy/docker-compose.yml"},
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def rendered() -> dict[Path, str]:
    """Every generated file and its exact content."""
    files = {
        SCHEMA_DIR / f"{t.name}.json": json.dumps(schema_for(t), ensure_ascii=False, indent=2)
        + "\n"
        for t in TOPICS
    }
    files[ASYNCAPI_PATH] = yaml.safe_dump(asyncapi(), allow_unicode=True, sort_keys=False)

    files[WEBHOOKS_PATH] = json.dumps(webhooks_document(), ensure_ascii=False, indent=2) + "\n"
    return files


def main() -> None:
    SCHEMA_DIR.mkdir(exist_ok=True)
    for path, text in rendered().items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
