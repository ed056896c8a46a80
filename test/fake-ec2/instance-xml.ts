// How an instance looks in RunInstances / DescribeInstances answers (element names from the SDK's schema).
import { tagSet, xml, type XmlRecord } from './protocol.js'
import type { Instance } from './instances.js'
import type { InstanceStateName, World } from './types.js'

const CODES: Record<InstanceStateName, number> = { pending: 0, running: 16, 'shutting-down': 32, terminated: 48 }

export const stateXml = (state: InstanceStateName): { code: number, name: InstanceStateName } => ({ code: CODES[state], name: state })

const dnsName = (ip: string): string => `ip-${ip.replace(/\./g, '-')}.ec2.internal`
const publicDns = (ip: string): string => `ec2-${ip.replace(/\./g, '-')}.compute-1.amazonaws.com`

export function instanceItem (w: World, i: Instance): XmlRecord {
  const gone = i.state === 'terminated'
  const publicIp = w.instances.publicIpOf(i)
  const groups = i.groupIds.map((groupId) => ({
    groupId,
    groupName: w.opts.securityGroups.find((g) => g.groupId === groupId)?.groupName ?? groupId
  }))
  const association = publicIp === undefined ? undefined : { publicIp, publicDnsName: publicDns(publicIp), ipOwnerId: 'amazon' }
  return {
    instanceId: i.id,
    imageId: i.imageId,
    instanceState: stateXml(i.state),
    privateDnsName: gone ? '' : dnsName(i.privateIp),
    dnsName: publicIp === undefined ? '' : publicDns(publicIp),
    reason: i.reason,
    keyName: i.keyName,
    amiLaunchIndex: i.launchIndex,
    productCodes: [],
    instanceType: i.instanceType,
    launchTime: new Date(i.launchTime),
    placement: { availabilityZone: i.subnet.availabilityZone, groupName: '', tenancy: 'default' },
    monitoring: { state: 'disabled' },
    subnetId: gone ? undefined : i.subnet.subnetId,
    vpcId: gone ? undefined : i.subnet.vpcId,
    privateIpAddress: gone ? undefined : i.privateIp,
    ipAddress: publicIp,
    sourceDestCheck: gone ? undefined : true,
    groupSet: gone ? [] : groups,
    stateReason: i.stateReason,
    architecture: 'x86_64',
    rootDeviceType: 'ebs',
    rootDeviceName: '/dev/xvda',
    blockDeviceMapping: w.volumes.mappingsFor(i.id),
    virtualizationType: 'hvm',
    clientToken: i.clientToken ?? '',
    tagSet: tagSet(i.tags),
    hypervisor: 'xen', // EC2 reports "xen" for Nitro instances too
    iamInstanceProfile: i.profileArn === undefined ? undefined : { arn: i.profileArn, id: `AIPA${i.id.slice(-16).toUpperCase()}` },
    networkInterfaceSet: gone
      ? []
      : [{
          networkInterfaceId: i.eniId,
          subnetId: i.subnet.subnetId,
          vpcId: i.subnet.vpcId,
          description: '',
          ownerId: w.opts.accountId,
          status: 'in-use',
          macAddress: i.mac,
          privateIpAddress: i.privateIp,
          privateDnsName: dnsName(i.privateIp),
          sourceDestCheck: true,
          groupSet: groups,
          attachment: {
            attachmentId: i.eniAttachmentId,
            deviceIndex: 0,
            status: 'attached',
            attachTime: new Date(i.launchTime),
            deleteOnTermination: true,
            networkCardIndex: 0
          },
          association,
          privateIpAddressesSet: [{ privateIpAddress: i.privateIp, privateDnsName: dnsName(i.privateIp), primary: true, association }],
          ipv6AddressesSet: [],
          interfaceType: 'interface'
        }],
    ebsOptimized: false,
    enaSupport: true,
    metadataOptions: {
      state: 'applied',
      httpTokens: i.httpTokens,
      httpPutResponseHopLimit: 2,
      httpEndpoint: 'enabled',
      httpProtocolIpv6: 'disabled',
      instanceMetadataTags: i.metadataTags ? 'enabled' : 'disabled'
    }
  }
}

export function reservationXml (w: World, reservationId: string, insts: Instance[]): string {
  return xml({
    reservationId,
    ownerId: w.opts.accountId,
    groupSet: [],
    instancesSet: insts.map((i) => instanceItem(w, i))
  })
}
