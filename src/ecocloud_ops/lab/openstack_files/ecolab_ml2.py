"""The OpenStack lab's ML2 mechanism driver: binds every port at once and marks it ACTIVE.

The lab has no L2 agent (no Open vSwitch, no Linux bridge): the fake compute driver plugs nothing. Neutron's
shipped ``test`` driver fails binding, and the agent-based drivers wait for an agent that never reports. This
driver binds the first segment it is offered with the ``other`` VIF type and the ACTIVE status, so nova sees a
normal bound port and neutron sends it the network-vif-plugged event. Registered in the lab venv as the
``neutron.ml2.mechanism_drivers`` entry point ``ecolab`` (see ``OpenStackLab.ensure_venv``).
"""

from neutron_lib import constants
from neutron_lib.api.definitions import portbindings
from neutron_lib.plugins.ml2 import api


class LabMechanismDriver(api.MechanismDriver):
    """Bind every port, on any segment type, without an agent."""

    def initialize(self):
        pass

    def bind_port(self, context):
        for segment in context.segments_to_bind:
            context.set_binding(segment[api.ID], portbindings.VIF_TYPE_OTHER, {portbindings.CAP_PORT_FILTER: False},
                                status=constants.PORT_STATUS_ACTIVE)
            return
