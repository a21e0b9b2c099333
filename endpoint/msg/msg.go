// Package msg is the `msg/<topic>` endpoint family: publish a payload on
// the topic named after `msg/` (SPEC section 3).
package msg

import (
	"github.com/tinycontainer/tinycontainer/abi"
	"github.com/tinycontainer/tinycontainer/endpoint"
)

// Publisher carries messages (the device's bus). Errors are mapped with
// abi.ErrnoOf, so a publisher returns abi.Errno values wrapped in its
// errors (EINVAL for a bad topic, EMSGSIZE for a large payload, EAGAIN
// when full).
type Publisher interface {
	Publish(from, topic string, payload []byte) error
}

type topicEndpoint struct {
	pub   Publisher
	topic string
}

func (topicEndpoint) Ops() abi.OpSet { return abi.OpSetOf(abi.OpPublish) }

func (t topicEndpoint) Call(c *endpoint.Call, _ abi.Op, in, _ []byte) int32 {
	if err := t.pub.Publish(c.Container(), t.topic, in); err != nil {
		return abi.ErrnoOf(err).Result()
	}
	return 0
}

// Family returns the endpoint family to register under "msg/".
func Family(p Publisher) endpoint.Family {
	return func(topic string) (endpoint.Endpoint, bool) {
		return topicEndpoint{pub: p, topic: topic}, true
	}
}
